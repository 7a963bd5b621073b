"""The live floor in a real browser: what a supervisor sees and does, against the real
service. Every wait is for a condition on the page or in the API, never a sleep."""

from __future__ import annotations

from typing import Any

from router.auth import Role
from router.pb.omniroute.v1 import resources_pb2 as pb
from tests.web.conftest import DOCS, Floor, log_in, wait_until


def _row(agent_id: str, **attrs: str) -> str:
    extra = "".join(f'[data-{k}="{v}"]' for k, v in attrs.items())
    return f'tr.agent[data-agent="{agent_id}"]{extra}'


def test_seeded_floor_shows_figures_queues_agents_and_is_saved_as_screenshots(
    floor: Floor, browser: Any
) -> None:
    page = log_in(browser, floor)
    page.wait_for_selector(_row("ana", state="available"))
    page.wait_for_selector(_row("dev", state="away"))
    page.wait_for_selector(_row("farid", state="signed_out"))
    assert "lunch" in page.inner_text(_row("dev"))
    assert page.inner_text("#fig-waiting").strip() != ""
    fraud = page.locator('tr.q[data-issue="fraud"][data-channel="voice"]')
    assert "alert-no_agent" in (fraud.get_attribute("class") or "")
    assert "no eligible agent" in page.inner_text("#frag-banner")
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "web-floor.png"), full_page=True)
    page.goto(f"{floor.url}/floor?wallboard=1")
    page.wait_for_selector("body[data-version]")
    assert not page.is_visible("#skill-form")
    assert not page.is_visible("#filters")
    page.screenshot(path=str(DOCS / "web-wallboard.png"), full_page=True)
    page.context.close()


def test_a_change_made_through_grpc_appears_on_two_open_pages(floor: Floor, browser: Any) -> None:
    first, second = log_in(browser, floor), log_in(browser, floor)
    floor.set_state("liv", pb.AGENT_STATE_AVAILABLE)
    for page in (first, second):
        page.wait_for_selector(_row("liv", state="available"))
    floor.set_state("liv", pb.AGENT_STATE_AWAY, "meeting")
    for page in (first, second):
        page.wait_for_selector(_row("liv", state="away"))
        assert "meeting" in page.inner_text(_row("liv"))
    first.context.close()
    second.context.close()


def test_a_skill_set_in_the_page_is_in_the_api_the_audit_log_and_the_next_routing_decision(
    floor: Floor, browser: Any
) -> None:
    waiting = floor.submit("fraud", pb.CHANNEL_EMAIL)  # nobody holds skill fraud yet
    page = log_in(browser, floor)
    page.fill("#skill-agent", "eve")
    page.fill("#skill-name", "fraud")
    page.fill("#skill-level", "4")
    page.click("#skill-form button[value=set]")
    page.wait_for_selector(".flash")
    skills = {s.skill: s.proficiency for s in floor.agent("eve").skills}
    assert skills["fraud"] == 4
    event = next(e for e in floor.audit() if e.action == "SetSkill")
    assert event.target == "tenants/t1/agents/eve"
    assert "/webSessions/" in event.actor and '"fraud"' in event.after
    offered = wait_until(
        lambda: (c := floor.contact(waiting.name)).state != pb.CONTACT_STATE_QUEUED and c,
        what="the fraud contact to be routed",
    )
    assert offered.agent == "tenants/t1/agents/eve"
    page.wait_for_selector('tr.agent[data-agent="eve"] .skill[data-skill="fraud"]')
    page.context.close()


def test_forcing_an_agent_away_in_the_page_stops_offers_to_that_agent(
    floor: Floor, browser: Any
) -> None:
    page = log_in(browser, floor)
    first = floor.submit("repairs", pb.CHANNEL_VOICE)  # only kai holds repairs
    wait_until(
        lambda: floor.contact(first.name).agent == "tenants/t1/agents/kai", what="offer to kai"
    )
    page.fill("#state-agent", "kai")
    page.check('#state-form input[value="away"]')
    page.fill("#state-reason", "training")
    page.click("#state-form button[type=submit]")
    page.wait_for_selector(".flash")
    page.wait_for_selector(_row("kai", state="away"))
    agent = floor.agent("kai")
    assert agent.state == pb.AGENT_STATE_AWAY and agent.away_reason == "training"
    returned = floor.contact(first.name)  # the pending offer went back to the queue
    assert returned.state == pb.CONTACT_STATE_QUEUED
    second = floor.submit("repairs", pb.CHANNEL_VOICE)
    page.wait_for_selector(f'tr[data-contact="{second.name.rsplit("/", 1)[1]}"]')
    assert floor.contact(second.name).state == pb.CONTACT_STATE_QUEUED
    assert sum(load.contacts for load in floor.agent("kai").load) == 0
    floor.set_state("kai", pb.AGENT_STATE_AVAILABLE)  # back: the queue goes to kai again
    wait_until(lambda: floor.contact(first.name).agent == "tenants/t1/agents/kai", what="offer")
    page.context.close()


def test_a_requeued_contact_opens_its_routing_explanation(floor: Floor, browser: Any) -> None:
    floor.set_state("kai", pb.AGENT_STATE_AWAY, "break")  # returns kai's offers
    page = log_in(browser, floor)
    link = page.locator('#frag-waiting a:text("explanation")').first
    link.click()
    page.wait_for_selector("#explanation")
    assert "eligible of" in page.inner_text("#explanation")
    page.context.close()


def test_bad_input_is_explained_next_to_the_field_and_changes_nothing(
    floor: Floor, browser: Any
) -> None:
    before = floor.agent("eve")
    audit_before = len(floor.audit())
    page = log_in(browser, floor)
    cases = [
        ({"#skill-agent": "eve", "#skill-name": "billing", "#skill-level": "7"}, "proficiency"),
        ({"#skill-agent": "eve", "#skill-name": "billing", "#skill-level": "x"}, "proficiency"),
        ({"#skill-agent": "nobody", "#skill-name": "billing", "#skill-level": "3"}, "agent"),
        ({"#skill-agent": "eve", "#skill-name": "Bad Skill!", "#skill-level": "3"}, "skill"),
    ]
    for fields, field in cases:
        for selector, value in fields.items():
            page.fill(selector, value)
        page.click("#skill-form button[value=set]")
        error = page.wait_for_selector(f'#skill-form [data-error-for="{field}"]')
        assert error is not None and error.inner_text()
    page.fill("#skill-agent", "eve")
    page.fill("#skill-name", "no_such_skill")
    page.click("#skill-form button[value=remove]")
    assert "no skill" in page.inner_text('#skill-form [data-error-for="skill"]')
    page.fill("#state-agent", "eve")
    page.check('#state-form input[value="away"]')
    page.fill("#state-reason", "")
    page.click("#state-form button[type=submit]")
    assert "required" in page.inner_text('#state-form [data-error-for="reason"]')
    after = floor.agent("eve")
    assert (after.skills, after.state, after.etag) == (before.skills, before.state, before.etag)
    assert len(floor.audit()) == audit_before
    page.context.close()


def test_filters_are_kept_in_the_url_and_applied_after_reload(floor: Floor, browser: Any) -> None:
    page = log_in(browser, floor)
    page.fill('#filters input[name="skill"]', "router")
    page.wait_for_url("**skill=router**")
    page.select_option('#filters select[name="state"]', "available")
    page.wait_for_url("**state=available**")
    page.reload()
    page.wait_for_selector("body[data-version]")
    rows = page.locator("tr.agent:not([hidden])")
    visible = [rows.nth(i).get_attribute("data-agent") for i in range(rows.count())]
    assert visible and set(visible) <= {"ben", "chloe", "ines"}
    assert "ana" not in visible
    page.context.close()


def test_a_planner_key_cannot_sign_in(floor: Floor, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{floor.url}/login")
    page.fill("#api_key", floor.keys[("t1", Role.PLANNER)])
    page.click("button[type=submit]")
    assert "may not use the supervisor view" in page.inner_text("main")
    assert not [c for c in context.cookies() if c["name"] == "omr_session"]
    context.close()
