"""Prometheus metrics after real traffic: every metric the Grafana dashboard queries is in
/metrics, the gRPC metrics carry go-grpc-prometheus's labels, no label holds an agent or a
contact id, and only the replica holding the lease exports the shared gauges."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.request
from pathlib import Path

from router.auth import Role
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from tests.grpc.conftest import Api, ApiFactory

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "omniroute.json"
METRIC = re.compile(r"\b((?:grpc_server|omniroute)_[a-z_]+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _scrape(api: Api) -> str:
    assert api.service.metrics is not None
    await api.service.metrics.refresh()
    url = f"http://127.0.0.1:{api.service.metrics.port}/metrics"
    return await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())


async def _traffic(api: Api) -> None:
    await api.create_rule("billing", {"billing": 1})
    await api.create_agent("a1", {"billing": 3}, {pb.CHANNEL_CHAT: 1})
    await api.sign_in("a1")
    stream = api.stream("a1")
    try:
        first = await api.submit("billing", pb.CHANNEL_CHAT)
        offer = await stream.next_offer()
        await api.agents.DeclineOffer(
            agent_pb.DeclineOfferRequest(name=offer.name, token=offer.token, reason="busy"),
            metadata=api.md(Role.AGENT),
        )
        again = await stream.next_offer()
        assert again.contact.name == first.name
        await api.agents.AcceptOffer(
            agent_pb.AcceptOfferRequest(name=again.name, token=again.token),
            metadata=api.md(Role.AGENT),
        )
        await api.submit("billing", pb.CHANNEL_CHAT)  # waits: the only slot is taken
    finally:
        await stream.close()


async def test_every_dashboard_metric_is_exported_after_traffic(make_api: ApiFactory) -> None:
    api = await make_api(metrics_port=_free_port())
    await _traffic(api)
    text = await _scrape(api)
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    used = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            used |= set(METRIC.findall(target["expr"]))
    assert used, "the dashboard queries no metric"
    missing = sorted(used - exported)
    assert not missing, f"dashboard metrics missing from /metrics: {missing}"
    assert (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="SubmitContact",'
        'grpc_service="omniroute.v1.ContactService",grpc_type="unary"}'
    ) in text
    assert 'omniroute_offer_outcomes_total{outcome="declined",tenant="t1"} 1.0' in text
    assert 'omniroute_offer_outcomes_total{outcome="accepted",tenant="t1"} 1.0' in text
    assert 'omniroute_contacts_waiting{channel="chat",issue="billing",tenant="t1"} 1.0' in text
    labels = re.findall(r'(\w+)="([^"]*)"', text)
    assert not {"agent", "agent_id", "contact", "contact_id"} & {k for k, _ in labels}
    assert "a1" not in {v for _, v in labels}


async def test_only_the_lease_holder_exports_shared_gauges(make_api: ApiFactory) -> None:
    first = await make_api(metrics_port=_free_port())
    second = await make_api(metrics_port=_free_port())
    await first.create_rule("billing", {"billing": 1})
    await first.submit("billing", pb.CHANNEL_CHAT)
    one, two = await _scrape(first), await _scrape(second)
    assert "omniroute_metrics_leader 1.0" in one
    assert "omniroute_metrics_leader 0.0" in two
    assert "omniroute_contacts_waiting{" in one
    assert "omniroute_contacts_waiting{" not in two
