"""``omniroute demo``: the service on its embedded default, driven through the real gRPC
API by a simulated platform, supervisor and a dozen agents, with the routing shown.

It starts a ``Service`` (embedded Redis in a temporary directory unless ``--data-dir``
or ``REDIS_URL``), creates API keys for the tenant, writes routing rules and agents as a
supervisor, signs the agents in with offer streams open, submits the scripted contacts of
``router.demo_floor`` as a platform, and lets the agents accept, decline, let one offer
expire, and complete. Then it prints where each contact went, the history of the
customer who switched from a call to WhatsApp, and the queue figures, and cleans up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console

from queues.embedded import EmbeddedRedis
from router import logs
from router.auth import Role
from router.cli_render import enum_label, short
from router.client import (
    ClientError,
    Metadata,
    Tls,
    add_tls_arguments,
    auth_metadata,
    declare_skills,
    open_aio_channel,
    skills_of_rule,
    tls_options,
)
from router.config import Settings
from router.demo_floor import AGENTS, CROSS_CHANNEL_CUSTOMER, RULES, DemoContact, contacts
from router.demo_report import Recorder, history_item, show_summary
from router.domain import TenantId
from router.errors import InvalidArgument
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import agent_service_pb2_grpc as agent_grpc
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import contact_service_pb2_grpc as contact_grpc
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from router.pb.omniroute.v1 import supervisor_service_pb2_grpc as sup_grpc
from router.server import Service

#: Give up waiting for contacts to finish after this long (the demo then reports).
DEADLINE_S = 25.0


@dataclass
class Floor:
    """What the simulated platform and agents share."""

    tenant: str
    rec: Recorder
    script: dict[str, DemoContact]
    ids: dict[str, str] = field(default_factory=dict)
    done: dict[str, asyncio.Event] = field(default_factory=dict)
    first_offer_seen: set[str] = field(default_factory=set)

    def finished(self, label: str) -> asyncio.Event:
        """Set once the contact is completed."""
        return self.done.setdefault(label, asyncio.Event())


def _contact_fields(contact: pb.Contact) -> dict[str, Any]:
    return {
        "contact": contact.attributes.get("demo_label", short(contact.name)),
        "contact_id": short(contact.name) if contact.name else "",
        "channel": enum_label(pb.Channel, contact.channel, "CHANNEL_"),
        "issue": contact.issue,
        "language": contact.language,
        "priority": contact.priority,
        "customer": contact.attributes.get("demo_customer", ""),
    }


class AgentSim:
    """One simulated agent desktop: signs in, streams offers, answers each one."""

    def __init__(self, floor: Floor, channel: grpc.aio.Channel, agent_id: str, key: str) -> None:
        self.floor = floor
        self.stub = agent_grpc.AgentServiceStub(channel)
        self.agent_id = agent_id
        self.name = f"tenants/{floor.tenant}/agents/{agent_id}"
        self.md: Metadata = auth_metadata(key)
        self.tasks: set[asyncio.Task[None]] = set()

    async def sign_in(self) -> None:
        """Sign in available."""
        await self.stub.SignIn(agent_pb.SignInRequest(name=self.name), metadata=self.md)

    async def run(self) -> None:
        """Read the offer stream until cancelled; handle each offer in its own task."""
        call = self.stub.StreamOffers(
            agent_pb.StreamOffersRequest(name=self.name), metadata=self.md
        )
        try:
            async for event in call:
                if event.HasField("offer"):
                    task = asyncio.create_task(self.handle(event.offer))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                elif event.withdrawn.reason == "expired":
                    label = self._label_of(event.withdrawn.name)
                    self.floor.rec.emit(
                        "expired", contact=label, agent=self.agent_id, token=event.withdrawn.token
                    )
        finally:
            call.cancel()
            for task in list(self.tasks):
                task.cancel()

    def _label_of(self, offer_name: str) -> str:
        contact_id = short(offer_name)
        return next((k for k, v in self.floor.ids.items() if v == contact_id), contact_id)

    async def handle(self, offer: pb.Offer) -> None:
        """Accept (most), decline or ignore the offer; complete after the handle time."""
        fields = _contact_fields(offer.contact)
        label = fields["contact"]
        spec = self.floor.script[label]
        history = [history_item(h) for h in offer.customer.history]
        self.floor.rec.emit(
            "offered",
            **fields,
            agent=self.agent_id,
            token=offer.token,
            reason=offer.reason,
            history=history,
        )
        first = label not in self.floor.first_offer_seen
        self.floor.first_offer_seen.add(label)
        await asyncio.sleep(spec.think_s)
        if first and spec.plan == "expire":
            return  # say nothing: the offer times out and the contact goes back to the queue
        if first and spec.plan == "decline":
            request = agent_pb.DeclineOfferRequest(
                name=offer.name, token=offer.token, reason="busy_with_another_customer"
            )
            await self.stub.DeclineOffer(request, metadata=self.md)
            self.floor.rec.emit("declined", contact=label, agent=self.agent_id, token=offer.token)
            return
        accept = agent_pb.AcceptOfferRequest(name=offer.name, token=offer.token)
        await self.stub.AcceptOffer(accept, metadata=self.md)
        self.floor.rec.emit("accepted", contact=label, agent=self.agent_id, token=offer.token)
        await asyncio.sleep(spec.handle_s)
        complete = agent_pb.CompleteContactRequest(
            name=offer.name,
            token=offer.token,
            outcome=f"OUTCOME_{spec.outcome.upper()}",
            note=spec.note,
        )
        await self.stub.CompleteContact(complete, metadata=self.md)
        self.floor.rec.emit(
            "completed", contact=label, agent=self.agent_id, token=offer.token, outcome=spec.outcome
        )
        self.floor.finished(label).set()


async def _submit(
    floor: Floor,
    stub: contact_grpc.ContactServiceAsyncStub,
    md: Metadata,
    spec: DemoContact,
    start: float,
) -> None:
    """The platform submits one contact at its time (or after the one it follows)."""
    loop = asyncio.get_running_loop()
    if spec.after:
        await floor.finished(spec.after).wait()
        await asyncio.sleep(0.5)
    else:
        await asyncio.sleep(max(0.0, start + spec.at_s - loop.time()))
    message = spec.message()
    # Announced before the call returns: the offer may reach an agent before the reply.
    floor.rec.emit("submitted", **_contact_fields(message))
    request = contact_pb.SubmitContactRequest(
        parent=f"tenants/{floor.tenant}", contact=message, request_id=f"demo-{spec.label}"
    )
    contact = await stub.SubmitContact(request, metadata=md)
    floor.ids[spec.label] = short(contact.name)


async def _set_up_floor(channel: grpc.aio.Channel, tenant: str, md: Metadata) -> None:
    """As the supervisor: routing rules and agents, through the API."""
    sup = sup_grpc.SupervisorServiceStub(channel)
    existing = await sup.ListAgents(
        sup_pb.ListAgentsRequest(parent=f"tenants/{tenant}"), metadata=md
    )
    if existing.agents:
        raise DemoError(f"tenant {tenant!r} already has agents in this Redis; pass --tenant OTHER")
    # The catalogue first: rules may then name skills no agent holds yet.
    named = sorted({skill for rule in RULES.values() for skill in skills_of_rule(rule)})
    await declare_skills(sup, f"tenants/{tenant}", named, md)
    for issue, rule in RULES.items():
        message = pb.RoutingRule()
        message.CopyFrom(rule)
        message.name = f"tenants/{tenant}/routingRules/{issue}"
        request = sup_pb.UpdateRoutingRuleRequest(routing_rule=message, allow_missing=True)
        await sup.UpdateRoutingRule(request, metadata=md)
    for agent in AGENTS:
        create = sup_pb.CreateAgentRequest(
            parent=f"tenants/{tenant}", agent_id=agent.id, agent=agent.message()
        )
        await sup.CreateAgent(create, metadata=md)


class DemoError(Exception):
    """The demo cannot run as asked."""


async def _keys(service: Service, tenant: str) -> dict[str, str]:
    """API keys made directly in the store: supervisor, platform, one per agent."""
    t = TenantId(tenant)
    keys = {}
    for role in (Role.SUPERVISOR, Role.PLATFORM):
        _, keys[role.value] = await service.supervision.create_api_key(
            t, role, "", f"demo {role.value}", "demo"
        )
    for agent in AGENTS:
        _, keys[agent.id] = await service.supervision.create_api_key(
            t, Role.AGENT, agent.id, f"demo desktop of {agent.id}", "demo"
        )
    return keys


async def _drive(
    port: int, keys: dict[str, str], floor: Floor, deadline_s: float, tls: Tls | None = None
) -> None:
    """Supervisor, agents and platform, all over gRPC, until every contact is done."""
    rec = floor.rec
    sup_md, platform_md = auth_metadata(keys["supervisor"]), auth_metadata(keys["platform"])
    async with open_aio_channel(f"127.0.0.1:{port}", tls) as channel:
        await _set_up_floor(channel, floor.tenant, sup_md)
        rec.say(
            f"Supervisor wrote {len(RULES)} routing rules ({', '.join(RULES)}) and "
            f"created {len(AGENTS)} agents."
        )
        sims = [AgentSim(floor, channel, a.id, keys[a.id]) for a in AGENTS]
        for sim in sims:
            await sim.sign_in()
        streams = [asyncio.create_task(sim.run(), name=f"agent-{sim.agent_id}") for sim in sims]
        rec.say(f"{len(sims)} agents signed in with offer streams open. Contacts arrive:\n")
        stub = contact_grpc.ContactServiceStub(channel)
        start = asyncio.get_running_loop().time()
        script = list(floor.script.values())
        submits = [asyncio.create_task(_submit(floor, stub, platform_md, c, start)) for c in script]
        try:
            waits = [floor.finished(c.label).wait() for c in script]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout=deadline_s)
            await _summarise(channel, floor, sup_md, platform_md)
        finally:
            for task in [*submits, *streams]:
                task.cancel()
            await asyncio.gather(*submits, *streams, return_exceptions=True)


async def _summarise(
    channel: grpc.aio.Channel, floor: Floor, sup_md: Metadata, platform_md: Metadata
) -> None:
    """Where each contact went, the cross-channel history, the queue figures."""
    stub = contact_grpc.ContactServiceStub(channel)
    finals: list[dict[str, Any]] = []
    customer_name = ""
    for label in floor.script:
        if label not in floor.ids:
            continue
        name = f"tenants/{floor.tenant}/contacts/{floor.ids[label]}"
        contact = await stub.GetContact(contact_pb.GetContactRequest(name=name), metadata=sup_md)
        finals.append(
            {
                **_contact_fields(contact),
                "state": enum_label(pb.ContactState, contact.state, "CONTACT_STATE_"),
                "agent": short(contact.agent) if contact.agent else "",
                "outcome": enum_label(pb.Outcome, contact.outcome, "OUTCOME_"),
            }
        )
        if contact.attributes.get("demo_customer") == CROSS_CHANNEL_CUSTOMER:
            customer_name = contact.customer
    history: list[dict[str, str]] = []
    if customer_name:
        customer = await stub.GetCustomer(
            contact_pb.GetCustomerRequest(name=customer_name), metadata=platform_md
        )
        history = [history_item(h) for h in customer.history]
    stats = await stub.GetQueueStats(
        contact_pb.GetQueueStatsRequest(parent=f"tenants/{floor.tenant}"), metadata=sup_md
    )
    show_summary(floor.rec, finals, CROSS_CHANNEL_CUSTOMER, history, stats)


async def run_demo(ns: argparse.Namespace, redis_url: str, console: Console) -> int:
    """Start Redis (unless `redis_url`) and the service, drive the floor, clean up."""
    rec = Recorder(console, ns.json)
    with contextlib.ExitStack() as stack:
        data_dir: Path = ns.data_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="omniroute-demo-"))
        )
        where = "REDIS_URL"
        if not redis_url:
            embedded = EmbeddedRedis(data_dir / "redis", persistent=False)
            redis_url = embedded.start()
            stack.callback(embedded.stop)
            where = f"embedded Redis {embedded.version}"
        settings = Settings(
            redis_url=redis_url,
            port=ns.port,
            data_dir=data_dir,
            offer_timeout_s=ns.offer_timeout,
            dev_keys=False,
            dev_tenant=ns.tenant,
            grace_s=0.5,
            tls_cert=ns.tls_cert or "",
            tls_key=ns.tls_key or "",
            tls_client_ca=ns.tls_client_ca or "",
        )
        settings.validate()
        # The demo's own clients: TLS when asked, and always when its service has TLS.
        tls = tls_options(os.environ, ns) or (Tls() if ns.tls_cert else None)
        service = Service(settings, redis_url)
        port = await service.start()
        try:
            rec.say(
                f"[bold]Omniroute demo[/]: service on 127.0.0.1:{port} ({where}), tenant "
                f"{ns.tenant!r}, offer timeout {ns.offer_timeout:g}s, seed {ns.seed}."
            )
            keys = await _keys(service, ns.tenant)
            web = None
            if ns.web_port is not None:
                from router.web.server import WebServer

                service.settings = replace(settings, web_port=ns.web_port)
                web = WebServer.beside(service)
                web_port = await web.start()
                rec.say(
                    f"Supervisor web view: http://127.0.0.1:{web_port}/ - sign in with the "
                    f"supervisor key {keys['supervisor']}"
                )
            floor = Floor(ns.tenant, rec, {c.label: c for c in contacts(ns.seed)})
            await _drive(port, keys, floor, DEADLINE_S, tls)
            if ns.linger:
                rec.say(
                    "\nThe service stays up (gRPC on 127.0.0.1:"
                    f"{port}) for you to look around; Ctrl-C stops it."
                )
                await _until_interrupted()
            if web is not None:
                await web.stop()
        finally:
            await service.stop()
    rec.say(f"\nDone in {rec.elapsed():.1f}s; service and Redis stopped.")
    return 0


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def parser() -> argparse.ArgumentParser:
    """Flags of ``omniroute demo``."""
    p = argparse.ArgumentParser(prog="omniroute demo", description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print routing events as JSON lines")
    p.add_argument(
        "--web-port",
        type=int,
        help="also serve the supervisor web view on this port (0: a free one)",
    )
    p.add_argument(
        "--linger", action="store_true", help="keep the service up after the demo, until Ctrl-C"
    )
    p.add_argument("--port", type=int, default=0, help="gRPC port (default: a free one)")
    p.add_argument("--data-dir", type=Path, help="embedded Redis files (default: a temp dir)")
    p.add_argument("--tenant", default="demo", help="tenant to use (default demo)")
    p.add_argument("--seed", type=int, default=7, help="seed of handle times and outcomes")
    p.add_argument(
        "--offer-timeout", type=float, default=3.0, help="seconds an offer waits (default 3)"
    )
    p.add_argument("--log-level", default="error", choices=("debug", "info", "warning", "error"))
    server = p.add_argument_group("TLS of the demo's service (as `omniroute serve`)")
    server.add_argument("--tls-cert", help="PEM certificate chain: serve gRPC over TLS")
    server.add_argument("--tls-key", help="PEM private key of --tls-cert")
    server.add_argument("--tls-client-ca", help="PEM CA: require client certificates (mTLS)")
    add_tls_arguments(p.add_argument_group("TLS of the demo's clients (as the commands)"))
    return p


def main(argv: Sequence[str] | None = None, *, configure_logging: bool = True) -> int:
    """Entry point of ``omniroute demo``. Tests pass ``configure_logging=False`` to keep
    the process's structlog configuration."""
    ns = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if configure_logging:
        logs.configure(json=True, level=ns.log_level)
    console = Console() if sys.stdout.isatty() else Console(file=sys.stdout, width=220)
    try:
        return asyncio.run(run_demo(ns, os.environ.get("REDIS_URL", ""), console))
    except DemoError as exc:
        print(f"omniroute demo: {exc}", file=sys.stderr)
        return 1
    except (InvalidArgument, ClientError) as exc:
        print(f"omniroute demo: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        call = isinstance(exc, grpc.Call | grpc.aio.AioRpcError)
        detail = f"{exc.code().name}: {exc.details()}" if call else str(exc)
        print(f"omniroute demo: {detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
