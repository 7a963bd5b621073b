"""Routing rules: for an issue, the skills it needs, its service-level target, the
relaxation steps over waiting time, and the agent-selection weights.

Pure and validated on construction through :func:`validate_rule`; a rule that could
never be met or a step that could never apply is rejected with the field at fault.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from router.domain import (
    DEFAULT_ANSWER_TARGET_S,
    MAX_PROFICIENCY,
    MIN_PROFICIENCY,
    Channel,
    Contact,
)
from router.errors import InvalidArgument

#: Skill, issue and reason names: lower-case words, digits, `_`, `-`, `.` and `:`.
NAME_RE = re.compile(r"^[a-z][a-z0-9_.:\-]{0,62}$")
#: The rule used for an issue that has no rule of its own, when the tenant defines it.
FALLBACK_ISSUE = "default"
#: Languages are skills: a contact in language `xx` needs skill `lang.xx` when the rule asks.
LANGUAGE_SKILL_PREFIX = "lang."


@dataclass(frozen=True, slots=True)
class Weights:
    """How much each component counts when choosing among eligible agents.

    Every component is normalised to 0..1 before weighting (see ``router.scoring``):
    ``proficiency`` mean level of the required skills over 5; ``idle`` idle time over
    ``idle_horizon_s`` (fairness: the longest idle agent first); ``occupancy`` free share
    of the agent's capacity; ``affinity`` 1 for the agent who last handled this
    customer's issue, 0.5 for one who served the customer before.
    """

    proficiency: float = 1.0
    idle: float = 1.0
    occupancy: float = 0.5
    affinity: float = 2.0
    idle_horizon_s: float = 600.0


DEFAULT_WEIGHTS = Weights()


@dataclass(frozen=True, slots=True)
class RelaxationStep:
    """From `after_s` of waiting on, required levels change: each skill named in
    `min_proficiency` gets that minimum; level 0 drops the skill entirely."""

    after_s: float
    min_proficiency: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Rule:
    """How contacts of one issue are routed."""

    issue: str
    skills: Mapping[str, int]
    service_level: float = 0.8
    answer_target_s: Mapping[Channel, float] = field(default_factory=dict)
    steps: tuple[RelaxationStep, ...] = ()
    weights: Weights = DEFAULT_WEIGHTS
    require_language: bool = True
    description: str = ""

    def step_at(self, waited_s: float) -> int:
        """Index of the relaxation step in force after `waited_s`, or -1 for none."""
        index = -1
        for i, step in enumerate(self.steps):
            if waited_s >= step.after_s:
                index = i
        return index

    def required_at(self, waited_s: float) -> dict[str, int]:
        """Skills and minimum levels required once the contact has waited `waited_s`."""
        required = dict(self.skills)
        for step in self.steps[: self.step_at(waited_s) + 1]:
            for skill, level in step.min_proficiency.items():
                if level == 0:
                    required.pop(skill, None)
                else:
                    required[skill] = level
        return required

    def requirements(self, contact: Contact, now: float) -> dict[str, int]:
        """What `contact` needs of an agent at `now`: the rule's skills, relaxed by its
        wait, plus its language when the rule asks for one."""
        required = self.required_at(contact.waited_s(now))
        if self.require_language and contact.language:
            required.setdefault(LANGUAGE_SKILL_PREFIX + contact.language, MIN_PROFICIENCY)
        return required

    def target_s(self, channel: Channel) -> float:
        """Seconds within which a contact of `channel` counts as answered in service level."""
        return self.answer_target_s.get(channel, DEFAULT_ANSWER_TARGET_S[channel])


def default_rule(issue: str) -> Rule:
    """A rule needing skill `issue` at level 1: what a tenant gets until it writes one."""
    return Rule(issue=issue, skills=MappingProxyType({issue: MIN_PROFICIENCY}))


class RuleBook:
    """The rules of one tenant, by issue, with the fallback rule ``default`` if defined."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules = {rule.issue: rule for rule in rules}

    def for_issue(self, issue: str) -> Rule | None:
        """The rule for `issue`, else the fallback rule, else None."""
        return self._rules.get(issue) or self._rules.get(FALLBACK_ISSUE)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules.values())

    def __len__(self) -> int:
        return len(self._rules)


def check_name(field_path: str, value: str) -> str:
    """`value` if it is a valid skill/issue/reason name, else InvalidArgument naming it."""
    if not value:
        raise InvalidArgument(field_path, "must not be empty")
    if not NAME_RE.match(value):
        raise InvalidArgument(
            field_path,
            f"{value[:40]!r} is not a valid name (lower-case letters, digits, _ - . :, "
            "starting with a letter, at most 63 characters)",
        )
    return value


def check_level(field_path: str, level: int, *, allow_zero: bool = False) -> int:
    """`level` if it is a proficiency 1..5 (or 0 where dropping is allowed)."""
    low = 0 if allow_zero else MIN_PROFICIENCY
    if not low <= level <= MAX_PROFICIENCY:
        raise InvalidArgument(
            field_path, f"proficiency must be {low}..{MAX_PROFICIENCY}, got {level}"
        )
    return level


def validate_rule(rule: Rule) -> Rule:
    """Return `rule` if it can route contacts; else InvalidArgument naming the field."""
    check_name("rule.issue", rule.issue)
    if not rule.skills:
        raise InvalidArgument("rule.skills", "at least one required skill")
    for skill, level in rule.skills.items():
        check_name(f"rule.skills[{skill!r}]", skill)
        check_level(f"rule.skills[{skill!r}]", level)
    if not 0.0 < rule.service_level <= 1.0:
        raise InvalidArgument("rule.service_level", "must be in (0, 1]")
    for channel, target in rule.answer_target_s.items():
        if not 0 < target <= 30 * 86400:
            raise InvalidArgument(f"rule.answer_targets[{channel}]", "must be 0 < s <= 30 days")
    _validate_steps(rule)
    _validate_weights(rule.weights)
    return rule


def _validate_steps(rule: Rule) -> None:
    previous = -1.0
    required = dict(rule.skills)
    for i, step in enumerate(rule.steps):
        where = f"rule.steps[{i}]"
        if not step.after_s >= 0 or step.after_s != step.after_s:
            raise InvalidArgument(f"{where}.after", "must be a non-negative duration")
        if step.after_s <= previous:
            raise InvalidArgument(
                f"{where}.after", "steps must be in strictly increasing order of waiting time"
            )
        if not step.min_proficiency:
            raise InvalidArgument(f"{where}.skills", "a step must change at least one skill")
        changed = False
        for skill, level in step.min_proficiency.items():
            check_name(f"{where}.skills[{skill!r}]", skill)
            check_level(f"{where}.skills[{skill!r}]", level, allow_zero=True)
            if required.get(skill, 0) != level:
                changed = True
            if level == 0:
                required.pop(skill, None)
            else:
                required[skill] = level
        if not changed:
            raise InvalidArgument(
                where, "can never apply: it changes nothing the earlier steps set"
            )
        previous = step.after_s


def _validate_weights(weights: Weights) -> None:
    for name in ("proficiency", "idle", "occupancy", "affinity"):
        value = getattr(weights, name)
        if not 0.0 <= value <= 100.0:
            raise InvalidArgument(f"rule.weights.{name}", "must be 0..100")
    if not weights.idle_horizon_s > 0:
        raise InvalidArgument("rule.weights.idle_horizon", "must be positive")
