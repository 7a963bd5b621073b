"""Small plans shared by the simulator tests."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

from router.domain import AgentId, Channel
from router.rules import RelaxationStep, Rule, RuleBook
from simulations.models import NEVER, Distribution, Exponential, Stream
from simulations.plan import AgentSpec, Plan


def agents(
    count: int,
    group: str = "g",
    skills: Mapping[str, int] | None = None,
    capacity: Mapping[Channel, int] | None = None,
    on_duty: tuple[tuple[float, float], ...] = ((0.0, math.inf),),
    exclusive: bool = False,
) -> tuple[AgentSpec, ...]:
    """`count` identical agents."""
    return tuple(
        AgentSpec(
            AgentId(f"{group}-{k:03d}"),
            group,
            MappingProxyType(dict(skills or {"billing": 3})),
            MappingProxyType(dict(capacity or {Channel.VOICE: 1})),
            on_duty,
            exclusive,
        )
        for k in range(count)
    )


def mmc_plan(
    rate_per_s: float,
    aht_s: float,
    servers: int,
    horizon_s: float,
    patience: Distribution = NEVER,
    warmup_s: float = 0.0,
) -> Plan:
    """M/M/c (or M/M/c+M with a patience) with target 20 s on voice."""
    rule = Rule(
        issue="billing",
        skills=MappingProxyType({"billing": 1}),
        answer_target_s=MappingProxyType({Channel.VOICE: 20.0}),
    )
    return Plan(
        agents=agents(servers),
        rules=RuleBook([rule]),
        horizon_s=horizon_s,
        interval_s=horizon_s / 4,
        warmup_s=warmup_s,
        streams=(
            Stream(
                "billing", Channel.VOICE, (rate_per_s,), horizon_s, Exponential(aht_s), patience
            ),
        ),
    )


def relaxing_rule() -> Rule:
    """Billing needs level 3; after 30 s level 1 will do."""
    return Rule(
        issue="billing",
        skills=MappingProxyType({"billing": 3}),
        steps=(RelaxationStep(30.0, MappingProxyType({"billing": 1})),),
    )
