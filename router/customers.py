"""Use cases around customers and decisions: merging two customers, and reading the
explanation of a routing decision. They read and commit through ``RedisState``."""

from __future__ import annotations

import json
from typing import Any

import structlog

from queues.state import RedisState
from router.domain import ContactId, CustomerId, TenantId
from router.errors import Conflict, InvalidArgument, NotFound

log = structlog.get_logger(__name__)


def customer_name(tenant: TenantId, customer_id: str) -> str:
    """``tenants/{t}/customers/{c}``."""
    return f"tenants/{tenant}/customers/{customer_id}"


async def merge_customers(
    state: RedisState, tenant: TenantId, keep: CustomerId, gone: CustomerId, actor: str
) -> bool:
    """Merge customer `gone` into `keep`: its identities resolve to `keep` and the two
    histories become one, atomically and audited. True if merged now, False if it already
    was; NotFound if either is unknown; InvalidArgument if they are the same."""
    if keep == gone:
        raise InvalidArgument("merged", "must name another customer than `customer`")
    for _ in range(5):
        fields, _ = await state.read_customer(tenant, gone, 1)
        if not fields:
            raise NotFound(f"customer {gone!r} not found")
        result = await state.merge_customers(
            tenant,
            keep,
            gone,
            fields.get("identities") or "[]",
            actor,
            customer_name(tenant, gone),
        )
        if result.code == -9:
            continue
        if result.code == -4:
            which = keep if result.values and result.values[0] == "keep" else gone
            raise NotFound(f"customer {which!r} not found")
        if result.ok:
            log.info(
                "customers_merged",
                tenant=tenant,
                customer_id=keep,
                merged=gone,
                identities=int(result.values[0]),
                history=int(result.values[1]),
                actor=actor,
            )
        return result.ok
    raise Conflict(f"customer {gone!r} changed concurrently too often; retry")


async def routing_explanation(
    state: RedisState, tenant: TenantId, contact_id: ContactId
) -> dict[str, Any]:
    """The stored explanation of the contact's latest offer; NotFound if the contact is
    unknown or was never offered."""
    raw = await state.read_explanation(tenant, contact_id)
    if raw is None:
        raise NotFound(f"contact {contact_id!r} not found")
    if not raw:
        raise NotFound(f"contact {contact_id!r} has not been offered to an agent yet")
    value: dict[str, Any] = json.loads(raw)
    return value
