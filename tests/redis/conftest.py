"""RedisState on the flushed test Redis, and small helpers that drive one script each."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest
import redis.asyncio

from queues import keys
from queues.records import agent_profile, contact_fields
from queues.state import RedisState, Reservation, ScriptResult
from router.domain import (
    AgentId,
    AgentKind,
    Channel,
    Contact,
    ContactId,
    TenantId,
)

T = TenantId("t1")
DAY = "20260101"


@pytest.fixture
def state(aredis: redis.asyncio.Redis) -> RedisState:
    """A RedisState keeping 3 history entries per customer."""
    return RedisState(aredis, history_length=3)


async def enqueue(
    state: RedisState,
    contact_id: str,
    *,
    channel: Channel = Channel.CHAT,
    issue: str = "billing",
    priority: int = 0,
    target_ms: int = 60_000,
    request_id: str = "",
    digest: str = "d1",
    customer: str = "",
) -> ScriptResult:
    contact = Contact(ContactId(contact_id), channel, issue, 0.0, priority=priority)
    fields = contact_fields(contact, ())
    fields["cust"] = customer
    return await state.enqueue(
        T, ContactId(contact_id), fields, issue, channel, priority, target_ms, request_id, digest
    )


async def create_agent(
    state: RedisState,
    agent_id: str,
    capacity: dict[Channel, int] | None = None,
    skills: dict[str, int] | None = None,
    *,
    available: bool = True,
) -> None:
    profile = agent_profile(
        agent_id, AgentKind.HUMAN, skills or {"billing": 3}, capacity or {Channel.CHAT: 1}
    )
    result = await state.write_agent(
        T, AgentId(agent_id), "create", profile, None, "test", "CreateAgent", agent_id
    )
    assert result.ok
    if available:
        assert (
            await state.set_state(T, AgentId(agent_id), "available", "", "test", sign_in=True)
        ).ok


def reservation(
    contact_id: str,
    agent_id: str,
    *,
    channel: Channel = Channel.CHAT,
    issue: str = "billing",
    version: int = 1,
    nonce: str = "",
) -> Reservation:
    return Reservation(
        ContactId(contact_id),
        issue,
        channel,
        AgentId(agent_id),
        version,
        nonce or secrets.token_hex(4),
        "test",
    )


async def reserve(
    state: RedisState, contact_id: str, agent_id: str, *, timeout_ms: int = 30_000, **kw: object
) -> ScriptResult:
    (result,) = await state.reserve(T, [reservation(contact_id, agent_id, **kw)], timeout_ms)  # type: ignore[arg-type]
    return result


async def load(aredis: redis.asyncio.Redis, agent_id: str) -> dict[str, int]:
    raw = await aredis.hgetall(keys.agent_load(T, AgentId(agent_id)))
    return {k: int(v) for k, v in raw.items()}


async def wait_past(state: RedisState, deadline_ms: int) -> None:
    """Wait until Redis's clock is past `deadline_ms`."""
    while await state.now_ms() <= deadline_ms:
        await asyncio.sleep(0.01)


def history(raw: list[str]) -> list[dict[str, object]]:
    return [json.loads(r) for r in raw]
