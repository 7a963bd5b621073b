"""The skill catalogue's counts, counted afresh once per tenant (`index_skills.lua`): for
data written before the counts existed, and exactly what the incremental counts give."""

from __future__ import annotations

import asyncio

import redis.asyncio

from queues import keys
from queues.records import rule_to_json
from queues.state import RedisState
from router.domain import AgentId
from router.rules import RelaxationStep, Rule
from tests.redis.conftest import T, create_agent


async def counts(aredis: redis.asyncio.Redis) -> tuple[dict[str, str], dict[str, str]]:
    return (
        await aredis.hgetall(keys.skill_agents(T)),
        await aredis.hgetall(keys.skill_rules(T)),
    )


async def write_rule(state: RedisState, rule: Rule) -> None:
    result = await state.write_rule(T, rule.issue, "upsert", rule_to_json(rule), "t", "Put", "r")
    assert result.ok, result


async def test_counting_afresh_gives_what_the_scripts_counted_and_runs_once(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    await create_agent(state, "a1", skills={"billing": 3, "lang.en": 5})
    await create_agent(state, "a2", skills={"billing": 1})
    await aredis.hset(keys.skills(T), "senior", "{}")  # declared: a rule may name it
    await write_rule(state, Rule("vip", {"billing": 2}, steps=(RelaxationStep(60, {"senior": 1}),)))
    incremental = await counts(aredis)
    assert incremental == ({"billing": "2", "lang.en": "1"}, {"billing": "1", "senior": "1"})
    # As data from before the counts existed: no counts at all.
    await aredis.delete(keys.skill_agents(T), keys.skill_rules(T))
    assert await state.index_skills(T) is True
    assert await counts(aredis) == incremental
    assert await aredis.get(keys.skill_counts(T)) == "1"
    # Once only: later writes keep the counts, a second call changes nothing.
    await aredis.hset(keys.skill_agents(T), "billing", "7")
    assert await state.index_skills(T) is False
    assert (await counts(aredis))[0]["billing"] == "7"


async def test_agents_written_while_counting_make_it_list_them_again(
    state: RedisState, aredis: redis.asyncio.Redis
) -> None:
    """The script refuses a list of agents that is not the tenant's any more (-2) and the
    adapter lists again, so an agent created meanwhile is counted exactly once."""
    for k in range(30):
        await create_agent(state, f"a{k:02d}", skills={"billing": 2}, available=False)
    await aredis.delete(keys.skill_agents(T), keys.skill_rules(T))

    async def more() -> None:
        for k in range(30, 60):
            await create_agent(state, f"a{k:02d}", skills={"billing": 2}, available=False)

    await asyncio.gather(state.index_skills(T), more())
    # Every agent created after the count was taken was counted by write_agent.lua.
    assert (await counts(aredis))[0] == {"billing": "60"}


async def test_a_stale_list_is_refused(state: RedisState, aredis: redis.asyncio.Redis) -> None:
    await create_agent(state, "a1", available=False)
    result = await state._run(  # a list missing a1, as if a1 was created after listing
        "index_skills",
        [
            keys.skill_agents(T),
            keys.skill_rules(T),
            keys.skill_counts(T),
            keys.agents(T),
            keys.rules(T),
        ],
        [0, 0],
    )
    assert result.code == -2
    assert await aredis.get(keys.skill_counts(T)) is None
    assert (await counts(aredis))[0] == {"billing": "1"}  # untouched
    assert await state.index_skills(T) is True
    assert (await counts(aredis))[0] == {"billing": "1"}
    assert await state.read_agents(T, [AgentId("a1")])
