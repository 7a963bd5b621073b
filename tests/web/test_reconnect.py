"""After a restart of the service, an open page reconnects by itself, receives a full
snapshot and agrees with the API."""

from __future__ import annotations

from typing import Any

from router.auth import Role
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from tests.web.conftest import Floor, log_in

STATES = {
    pb.AGENT_STATE_AVAILABLE: "available",
    pb.AGENT_STATE_AWAY: "away",
    pb.AGENT_STATE_SIGNED_OUT: "signed_out",
}


def test_after_a_restart_the_page_reconnects_and_agrees_with_the_api(
    floor: Floor, browser: Any
) -> None:
    page = log_in(browser, floor)
    page.wait_for_selector('#conn[data-state="live"]')
    floor.stop()
    page.wait_for_selector('#conn:not([data-state="live"])')
    floor.start()
    page.wait_for_selector('#conn[data-state="live"]', timeout=20_000)
    floor.set_state("liv", pb.AGENT_STATE_AWAY, "after_restart")
    page.wait_for_selector('tr.agent[data-agent="liv"]:has-text("after_restart")')
    listed = floor.sup.ListAgents(
        sup_pb.ListAgentsRequest(parent="tenants/t1", page_size=100),
        metadata=floor.md(Role.SUPERVISOR),
    ).agents
    for agent in listed:
        agent_id = agent.name.rsplit("/", 1)[1]
        row = page.locator(f'tr.agent[data-agent="{agent_id}"]')
        assert row.get_attribute("data-state") == STATES[agent.state], agent_id
    page.context.close()
