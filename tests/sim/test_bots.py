"""Bots first in the simulator: a bot-first rule's contacts go to a bot (``pick_bot``), which
resolves a share and escalates the rest to people with their original arrival time."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from router.domain import AgentId, AgentKind, Channel, CustomerId
from router.rules import Rule, RuleBook, Weights
from simulations.cli import EXAMPLES, main
from simulations.engine import simulate
from simulations.models import NEVER, Distribution, Exponential, Fixed, Stream
from simulations.plan import AgentSpec, BotModel, Plan, ReplayContact
from simulations.results import summarize
from simulations.runlog import (
    ABANDONED,
    ANSWERED,
    BOT_CONTAINED,
    BOT_ESCALATED,
    CONTAINED,
    NO_BOT,
)
from simulations.scenario import load_scenario, parse_scenario
from simulations.yamlfields import ScenarioError
from tests.sim.sim_plans import agents

#: Ties on score go to the agent idle longest, so decisions do not depend on absolute times
#: (an idle-time score capped at its horizon would).
NO_IDLE = Weights(proficiency=1.0, idle=0.0, occupancy=0.0, affinity=0.0)
BOT_TIME = Exponential(90.0)


def bot(
    name: str = "assistant",
    channels: tuple[Channel, ...] = (Channel.CHAT,),
    skills: dict[str, int] | None = None,
    on_duty: tuple[tuple[float, float], ...] = ((0.0, math.inf),),
) -> AgentSpec:
    """One bot serving `channels`."""
    return AgentSpec(
        AgentId(f"{name}-0000"),
        name,
        MappingProxyType(skills or {"billing": 1}),
        MappingProxyType(dict.fromkeys(channels, 1)),
        on_duty,
        kind=AgentKind.BOT,
    )


def chat_plan(
    containment: float | None,
    bot_s: Distribution = BOT_TIME,
    rate_per_s: float = 0.05,
    horizon_s: float = 8 * 3600.0,
    people: int = 8,
    patience: Distribution = NEVER,
) -> Plan:
    """Billing chats, people with 2 chat slots; with `containment` not None, billing is
    bot first and one bot serves chat."""
    rule = Rule(
        issue="billing",
        skills=MappingProxyType({"billing": 1}),
        answer_target_s=MappingProxyType({Channel.CHAT: 60.0}),
        weights=NO_IDLE,
        bot_first=containment is not None,
    )
    plan = Plan(
        agents=agents(people, capacity={Channel.CHAT: 2}),
        rules=RuleBook([rule]),
        horizon_s=horizon_s,
        interval_s=horizon_s / 4,
        streams=(
            Stream(
                "billing",
                Channel.CHAT,
                (rate_per_s,),
                horizon_s,
                Exponential(300.0),
                patience,
            ),
        ),
    )
    if containment is None:
        return plan
    return replace(plan, bots=(bot(),), bot_models={"billing": BotModel(bot_s, containment)})


def test_containment_converges_to_the_configured_share() -> None:
    log = simulate(chat_plan(0.3, horizon_s=40 * 3600.0), seed=11)
    sent = sum(1 for b in log.bot if b != NO_BOT)
    contained = sum(1 for b in log.bot if b == BOT_CONTAINED)
    assert sent == log.contacts > 5_000  # the bot is always on: every contact meets it
    # 4 standard errors of a binomial share: a fixed seed, a bound a correct model keeps.
    assert abs(contained / sent - 0.3) <= 4 * math.sqrt(0.3 * 0.7 / sent)
    figures = summarize(log, chat_plan(0.3, horizon_s=40 * 3600.0)).total
    assert figures.sent_to_bot == sent and figures.contained == contained
    assert figures.containment == pytest.approx(contained / sent)


def test_contained_contacts_never_take_a_human_slot() -> None:
    everything = simulate(chat_plan(1.0), seed=3)
    assert set(everything.outcome) == {CONTAINED}
    assert set(everything.group) == {-1} and everything.busy_s == [0.0]
    half = simulate(chat_plan(0.5), seed=3)
    for outcome, group, by_bot in zip(half.outcome, half.group, half.bot, strict=True):
        if by_bot == BOT_CONTAINED:
            assert outcome == CONTAINED and group == -1
        else:
            assert by_bot == BOT_ESCALATED and outcome == ANSWERED and group == 0
    figures = summarize(half, chat_plan(0.5)).total
    assert figures.answered == figures.offered - figures.contained == figures.for_people


def test_escalated_contacts_keep_their_arrival_time_so_their_wait_includes_the_bot() -> None:
    plain = simulate(chat_plan(None, people=40), seed=5)
    botted = simulate(chat_plan(0.0, Fixed(75.0), people=40), seed=5)
    assert botted.arrived_s == plain.arrived_s
    assert set(plain.wait_s) == {0.0}  # people to spare: nobody waits without a bot ...
    assert botted.wait_s == pytest.approx([75.0] * botted.contacts)  # ... the bot's time
    figures = summarize(botted, chat_plan(0.0, Fixed(75.0))).total
    # Service level judges the person's answer from the escalation, as the live service
    # does: people answered at once, though every customer spent 75 s (> the 60 s chat
    # target) with the bot first.
    assert figures.service_level == 1.0
    assert figures.escalated_asa_s == pytest.approx(75.0)
    assert figures.escalated_after_bot_s == pytest.approx(0.0, abs=1e-9)


def test_containment_zero_gives_the_human_load_of_no_bot_plus_bot_time_in_waits() -> None:
    """Every contact reaches people 45 s later, in the same order, with the same handle time
    and patience: the people's side is the run without a bot shifted by 45 s, queue and
    abandonment included, and each measured wait is 45 s longer."""
    patience = Exponential(120.0)
    plain = simulate(chat_plan(None, rate_per_s=0.02, people=3, patience=patience), seed=9)
    botted = simulate(
        chat_plan(0.0, Fixed(45.0), rate_per_s=0.02, people=3, patience=patience), seed=9
    )
    assert plain.contacts == botted.contacts
    assert botted.outcome == plain.outcome and botted.group == plain.group
    assert ABANDONED in plain.outcome and max(plain.wait_s) > 60.0  # a real queue
    assert botted.wait_s == pytest.approx([w + 45.0 for w in plain.wait_s])
    # Busy time counts within the horizon: shifted by 45 s, at most 45 s per agent differs.
    assert abs(sum(botted.busy_s) - sum(plain.busy_s)) <= 45.0 * 3


def bank(contacts: list[tuple[float, float]], on_duty_bot: tuple[tuple[float, float], ...]) -> Plan:
    """Replayed billing chats (arrival, handle) for one person who also has a long "other"
    contact first; a bot on duty only during `on_duty_bot`; bot time 100 s, never resolving."""
    rules = RuleBook(
        [
            Rule("billing", MappingProxyType({"billing": 1}), bot_first=True),
            Rule("other", MappingProxyType({"other": 1})),
        ]
    )
    replay = tuple(
        ReplayContact(t, "billing", Channel.CHAT, 0, CustomerId(f"u{t}"), h, math.inf)
        for t, h in contacts
    )
    return Plan(
        agents=agents(1, skills={"billing": 1, "other": 1}, capacity={Channel.CHAT: 1}),
        rules=rules,
        horizon_s=1000.0,
        replay=(
            ReplayContact(0.5, "other", Channel.CHAT, 0, CustomerId("x"), 200.0, math.inf),
            *replay,
        ),
        bots=(bot(on_duty=on_duty_bot),),
        bot_models={"billing": BotModel(Fixed(100.0), 0.0)},
    )


def test_an_escalated_contact_returns_ahead_of_later_ones_and_people_take_what_no_bot_can() -> None:
    # A (t=1) meets the bot until 101; B (t=70) finds the bot off duty and waits for the
    # person, who is busy until 200.5. A rejoins the queue ahead of B: it arrived first.
    log = simulate(bank([(1.0, 50.0), (70.0, 40.0)], ((0.0, 60.0),)), seed=1)
    a, b = 1, 2
    assert log.bot[a] == BOT_ESCALATED and log.bot[b] == NO_BOT
    assert log.outcome[a] == log.outcome[b] == ANSWERED
    assert log.wait_s[a] == pytest.approx(200.5 - 1.0)
    assert log.wait_s[b] == pytest.approx(200.5 + 50.0 - 70.0)


def test_a_bot_coming_on_duty_takes_the_bot_first_contacts_people_left_waiting() -> None:
    # C waits from t=10 (no bot, the person busy); the bot signs in at 20 and takes it.
    log = simulate(bank([(10.0, 30.0)], ((20.0, 500.0),)), seed=1)
    assert log.bot[1] == BOT_ESCALATED and log.bot_s[1] == 100.0
    assert log.wait_s[1] == pytest.approx(200.5 - 10.0)  # back from the bot at 120


def test_patience_restarts_when_an_escalated_contact_joins_the_queue() -> None:
    plan = bank([(10.0, 30.0)], ((20.0, 500.0),))
    plan = replace(
        plan,
        replay=tuple(
            replace(c, patience_s=150.0) if c.issue == "billing" else c for c in plan.replay
        ),
    )
    log = simulate(plan, seed=1)
    # Its first wait's patience (to t=160) is void: it waits again from 120, until 270.
    assert log.outcome[1] == ANSWERED and log.wait_s[1] == pytest.approx(190.5)


GOOD = """\
name: bots
horizon: 1h
streams:
  - {issue: billing, channel: chat, per_hour: 60, handle: {dist: exponential, mean: 4m}}
rules:
  - issue: billing
    skills: {billing: 1}
    bot_first: true
    bot: {containment: 0.4, handle: {dist: fixed, mean: 90s}}
agents:
  - {group: care, count: 4, skills: {billing: 2}, capacity: {chat: 2}}
  - {group: assistant, kind: bot, skills: {billing: 1}, capacity: {chat: 1}}
"""


def test_a_scenario_declares_bots_and_bot_models() -> None:
    plan = parse_scenario(GOOD, "bots.yaml").plan
    assert [a.group for a in plan.agents] == ["care"] * 4
    assert [(b.id, b.kind) for b in plan.bots] == [("assistant-0000", AgentKind.BOT)]
    assert plan.rule("billing").bot_first
    assert plan.bot_model("billing") == BotModel(Fixed(90.0), 0.4)


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            "containment: 0.4",
            "containment: 1.5",
            "bots.yaml:9: rules[0].bot.containment: must be between 0 and 1",
        ),
        (
            "containment: 0.4",
            "containment: -0.1",
            "bots.yaml:9: rules[0].bot.containment: must be between 0 and 1",
        ),
        (
            "    bot: {containment: 0.4, handle: {dist: fixed, mean: 90s}}\n",
            "",
            "bots.yaml:8: rules[0].bot_first: a bot-first rule needs 'bot'",
        ),
        (
            "    bot_first: true\n",
            "",
            "bots.yaml:8: rules[0].bot: only a rule with 'bot_first: true'",
        ),
        (
            "containment: 0.4, handle: {dist: fixed, mean: 90s}",
            "containment: 0.4",
            "bots.yaml:9: rules[0].bot: missing field 'handle'",
        ),
        (
            "handle: {dist: fixed, mean: 90s}",
            "handle: never",
            "bots.yaml:9: rules[0].bot.handle: a bot must finish",
        ),
        (
            "kind: bot",
            "kind: robot",
            "bots.yaml:12: agents[1].kind: must be one of human, bot",
        ),
        (
            "capacity: {chat: 1}}",
            "capacity: {chat: 1}, exclusive_channels: true}",
            "bots.yaml:12: agents[1].exclusive_channels: a bot has no capacity limit",
        ),
        (
            "group: care, count: 4,",
            "group: care,",
            "bots.yaml:11: agents[0]: missing field 'count'",
        ),
    ],
)
def test_bad_bot_input_names_line_and_field(old: str, new: str, where: str) -> None:
    assert old in GOOD
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(GOOD.replace(old, new), "bots.yaml")
    assert str(caught.value).startswith(where), str(caught.value)


def test_the_example_reports_containment_in_json_and_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = EXAMPLES / "bots_first.yaml"
    assert load_scenario(example).plan.bots
    csv_path, html_path = tmp_path / "bots.csv", tmp_path / "bots.html"
    args = [str(example), "--replications", "2", "--csv", str(csv_path)]
    assert main([*args, "--json", "--report", str(html_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {(r["issue"], r["channel"]): r for r in data["bots"]}
    chat = rows[("password_reset", "chat")]
    assert chat["containment_planned"] == 0.7
    assert abs(chat["containment"]["mean"] - 0.7) < 0.1 and chat["sent_to_bot"]["mean"] > 100
    assert rows[("password_reset", "voice")]["sent_to_bot"]["mean"] == 0  # no voice bot
    assert data["by_channel"]["chat"]["contained"]["mean"] > 0
    assert "sent_to_bot,contained" in csv_path.read_text().splitlines()[0]
    assert "Bots first" in html_path.read_text()
    assert main(args) == 0
    assert "bots first" in capsys.readouterr().out
