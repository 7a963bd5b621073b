"""Bots in the pure core: a contact sent to a bot first goes to a bot (no capacity limit)
even when a person is free; nothing else ever goes to a bot; with no bot available people
take it; bots stay out of the people's indexes."""

from __future__ import annotations

from dataclasses import replace

from router.assign import Floor, pick_bot
from router.domain import (
    BOT_SLOTS,
    Agent,
    AgentId,
    AgentKind,
    AgentState,
    Channel,
    Contact,
    ContactId,
)
from router.explain import explanation
from router.policy import decide
from router.rules import Rule, RuleBook

NOW = 1_000.0
RULES = RuleBook([Rule("billing", {"billing": 1}, bot_first=True), Rule("tech", {"billing": 1})])


def agent(
    agent_id: str, *, bot: bool = False, load: int = 0, state: AgentState | None = None
) -> Agent:
    return Agent(
        id=AgentId(agent_id),
        skills={"billing": 3},
        capacity={Channel.CHAT: 1},
        load={Channel.CHAT: load} if load else {},
        state=state or AgentState.AVAILABLE,
        kind=AgentKind.BOT if bot else AgentKind.HUMAN,
    )


def contact(contact_id: str, issue: str = "billing", *, bot_first: bool = True) -> Contact:
    return Contact(ContactId(contact_id), Channel.CHAT, issue, NOW - 5, bot_first=bot_first)


def test_bot_first_contacts_go_to_a_bot_without_a_capacity_limit() -> None:
    floor = Floor([agent("bot", bot=True, load=7), agent("ana")])
    routed = decide([contact("c1"), contact("c2"), contact("c3")], floor, RULES, NOW)
    assert [(r.decision.contact.id, r.decision.agent.id) for r in routed] == [
        ("c1", "bot"),
        ("c2", "bot"),
        ("c3", "bot"),
    ]
    assert floor.get(AgentId("bot")) is not None and [a.id for a in floor] == ["ana"]
    assert agent("bot", bot=True, load=7).free_slots(Channel.CHAT) == BOT_SLOTS
    assert agent("bot", bot=True).free_slots(Channel.VOICE) == 0  # a channel it does not serve


def test_nothing_else_goes_to_a_bot() -> None:
    floor = Floor([agent("bot", bot=True)])
    plain = contact("c1", "tech", bot_first=False)
    assert decide([plain], floor, RULES, NOW) == []
    assert pick_bot(plain, floor, RULES.for_issue("tech"), NOW) is not None  # it could ...
    floor.put(agent("ana"))
    (routed,) = decide([plain], floor, RULES, NOW)  # ... but only a person gets it
    assert routed.decision.agent.id == "ana"


def test_people_take_bot_first_contacts_while_no_bot_is_available() -> None:
    floor = Floor([agent("bot", bot=True, state=AgentState.AWAY), agent("ana")])
    (routed,) = decide([contact("c1")], floor, RULES, NOW)
    assert routed.decision.agent.id == "ana"
    assert floor.available_count == 1


def test_bots_share_contacts_and_the_explanation_names_bots_only() -> None:
    floor = Floor([agent("bot-a", bot=True, load=2), agent("bot-b", bot=True), agent("ana")])
    decision = pick_bot(contact("c1"), floor, Rule("billing", {"billing": 1}), NOW)
    assert decision is not None and decision.agent.id == "bot-b"  # less occupied
    assert decision.eligible == 2 and decision.runner_up is not None
    why = explanation(decision, Rule("billing", {"billing": 1}), floor, NOW)
    assert {c["agent"] for c in why["candidates"]} == {"bot-a", "bot-b"}
    assert why["summary"].endswith("bot first")
    floor.reserve(AgentId("bot-b"), Channel.CHAT, NOW)
    floor.release(AgentId("bot-a"), Channel.CHAT)
    assert floor.get(AgentId("bot-b")).load == {Channel.CHAT: 1}  # type: ignore[union-attr]
    assert floor.get(AgentId("bot-a")).load == {Channel.CHAT: 1}  # type: ignore[union-attr]
    floor.remove(AgentId("bot-a"))
    assert [b.id for b in floor.bots()] == ["bot-b"]


def test_agent_groups_choose_among_people_a_bot_serves_the_whole_tenant() -> None:
    """A bot-first rule limited to the billing team: its bot takes the contact though the
    bot is in no group; when the bot is away, only the team's people may take it."""
    rules = RuleBook(
        [Rule("billing", {"billing": 1}, bot_first=True, agent_groups=frozenset({"team"}))]
    )
    team = replace(agent("ana"), groups=frozenset({"team"}))
    floor = Floor([agent("bot", bot=True), agent("loner"), team])
    (routed,) = decide([contact("c1")], floor, rules, NOW)
    assert routed.decision.agent.id == "bot"
    floor.put(agent("bot", bot=True, state=AgentState.AWAY))
    (routed,) = decide([contact("c2")], floor, rules, NOW)
    assert routed.decision.agent.id == "ana"
    floor.put(replace(team, load={Channel.CHAT: 1}))
    assert decide([contact("c3")], floor, rules, NOW) == []  # the loner is not in the team
