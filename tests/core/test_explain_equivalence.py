"""The explanation's candidate list, found by the fast top-k walk (`top_candidates`), is the
one scoring every candidate with `router.scoring.score` gives (`_best_scored`, the way it was
computed before): same agents, same order, same scores and components, holds and declines
included, on random floors and rules (agent groups too)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.affinity import Hold
from router.assign import Floor, pick_agent
from router.explain import _best_scored, _candidate, explanation
from tests.core.test_assign_speed_equivalence import (
    IDS,
    NOW,
    agents_st,
    contacts_st,
    rule_st,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_candidate_list_is_the_scored_one(data: st.DataObject) -> None:
    agents = data.draw(agents_st())
    contact = data.draw(contacts_st())[0]
    rule = data.draw(rule_st(contact.issue))
    now = NOW + data.draw(st.sampled_from([0.0, 0.5, 12.0, 40.0]))
    top = data.draw(st.sampled_from([1, 2, 3, 5, 10]))
    floor = Floor(agents)
    decision = pick_agent(contact, floor, rule, now)
    if decision is None:
        return
    hold = None
    if data.draw(st.booleans()):
        held = tuple(data.draw(st.lists(st.sampled_from(IDS), max_size=4, unique=True)))
        hold = Hold(agents=held, until=now + 10, kind="last agent")
    why = explanation(decision, rule, floor, now, hold=hold, top=top)
    among = None if hold is None else frozenset(hold.agents)
    oracle = _best_scored(decision, rule, floor, now, top, among)
    expected = [_candidate(decision.agent.id, decision.score, False)]
    expected += [_candidate(a, s, a in contact.declined_by) for a, s in oracle]
    assert why["candidates"] == expected
