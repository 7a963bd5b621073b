"""Routing rules: for an issue, the skills it needs, the agent groups it may use, its
service-level target, the relaxation steps over waiting time, and the agent-selection
weights.

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
    MAX_PRIORITY,
    MAX_PROFICIENCY,
    MIN_PROFICIENCY,
    Channel,
    Contact,
    QueueSignals,
)
from router.errors import InvalidArgument

#: Skill, issue and reason names: lower-case words, digits, `_`, `-`, `.` and `:`.
NAME_RE = re.compile(r"^[a-z][a-z0-9_.:\-]{0,62}$")
#: The rule used for an issue that has no rule of its own, when the tenant defines it.
FALLBACK_ISSUE = "default"
#: Agent groups an agent may belong to, and a rule or step may name.
MAX_GROUPS = 50
#: Languages are skills: a contact in language `xx` needs skill `lang.xx` when the rule asks.
LANGUAGE_SKILL_PREFIX = "lang."


class Requirements(dict[str, int]):
    """What a contact needs of an agent at one moment: every skill at its minimum level
    (the mapping itself), and membership of one of `groups` (None: any group).

    A plain ``dict`` of skills wherever only skills matter (scoring's proficiency, the
    explanation's levels); eligibility (``router.scoring.has_skills``, the floor's indexes,
    the joint model) reads `groups` as well."""

    __slots__ = ("groups",)

    def __init__(
        self, skills: Mapping[str, int] | None = None, groups: frozenset[str] | None = None
    ) -> None:
        super().__init__(skills or {})
        self.groups = groups

    def key(self) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...] | None]:
        """A hashable form: equal keys, equal requirements (dict equality ignores groups)."""
        groups = None if self.groups is None else tuple(sorted(self.groups))
        return tuple(sorted(self.items())), groups


def groups_of(required: Mapping[str, int]) -> frozenset[str] | None:
    """The agent groups `required` restricts to (None: any; a plain mapping: any)."""
    return required.groups if isinstance(required, Requirements) else None


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
    `min_proficiency` gets that minimum (lower or higher than before, or a skill not
    required before, e.g. ``senior`` for VIPs); level 0 drops the skill entirely.

    A step may also trigger on queue state (``QueueSignals``): it then applies only while
    every condition it names holds as well -- the expected wait is at least
    `expected_wait_over_s`, today's service level is below `service_level_below`, at most
    `eligible_at_most` eligible agents are available. Such a step comes and goes with the
    queue; an unknown signal never triggers it.

    A step may widen a rule that routes to some agent groups only (``Rule.agent_groups``)
    to more groups (`add_groups`: e.g. the overflow team, an outsourcer's site), and may
    change no skill then (`min_proficiency` empty)."""

    after_s: float
    min_proficiency: Mapping[str, int]
    expected_wait_over_s: float | None = None
    service_level_below: float | None = None
    eligible_at_most: int | None = None
    add_groups: frozenset[str] = frozenset()

    @property
    def on_queue_state(self) -> bool:
        """Does the step trigger on queue state (not on waiting time alone)?"""
        return (
            self.expected_wait_over_s is not None
            or self.service_level_below is not None
            or self.eligible_at_most is not None
        )

    def holds(self, waited_s: float, signals: QueueSignals | None) -> bool:
        """Does the step apply after `waited_s` with queue state `signals`?"""
        if waited_s < self.after_s:
            return False
        if not self.on_queue_state:
            return True
        if signals is None:
            return False
        if self.expected_wait_over_s is not None and not (
            signals.expected_wait_s is not None
            and signals.expected_wait_s >= self.expected_wait_over_s
        ):
            return False
        if self.service_level_below is not None and not (
            signals.service_level is not None and signals.service_level < self.service_level_below
        ):
            return False
        return self.eligible_at_most is None or (
            signals.eligible_agents is not None and signals.eligible_agents <= self.eligible_at_most
        )


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
    #: Extra wait for the customer's last agent (then agents who served them before)
    #: before anyone eligible may take the contact; 0: no wait (``router.affinity``).
    affinity_wait_s: float = 0.0
    #: A repeat contact (``router.history``): earlier attempt within this window not
    #: resolved, or the customer switched channel within it.
    repeat_window_s: float = 86_400.0
    #: Priority added to a repeat contact (capped at the maximum priority).
    repeat_priority_boost: int = 0
    #: Minimum proficiency of every required skill for a repeat contact (0: none).
    repeat_min_proficiency: int = 0
    #: New contacts go to a bot first (an agent of kind bot holding the requirements);
    #: what it cannot solve it escalates to people (``Contact.bot_first``).
    bot_first: bool = False
    #: Agent groups whose members may take the contact (empty: every group, and agents in
    #: none); steps widen it (``RelaxationStep.add_groups``).
    agent_groups: frozenset[str] = frozenset()

    def steps_in_force(self, waited_s: float, signals: QueueSignals | None = None) -> list[int]:
        """Indexes of the relaxation steps that apply after `waited_s` with `signals`."""
        return [i for i, step in enumerate(self.steps) if step.holds(waited_s, signals)]

    def step_at(self, waited_s: float, signals: QueueSignals | None = None) -> int:
        """Index of the last relaxation step in force after `waited_s`, or -1 for none."""
        index = -1
        for i, step in enumerate(self.steps):
            if step.holds(waited_s, signals):
                index = i
        return index

    def required_at(self, waited_s: float, signals: QueueSignals | None = None) -> Requirements:
        """Skills and minimum levels, and agent groups, required once the contact has
        waited `waited_s` (steps that trigger on queue state apply only when `signals`
        meet them)."""
        required = Requirements(self.skills)
        groups = set(self.agent_groups)
        for step in self.steps:
            if not step.holds(waited_s, signals):
                continue
            for skill, level in step.min_proficiency.items():
                if level == 0:
                    required.pop(skill, None)
                else:
                    required[skill] = level
            groups |= step.add_groups
        if self.agent_groups:
            required.groups = frozenset(groups)
        return required

    def requirements(self, contact: Contact, now: float) -> Requirements:
        """What `contact` needs of an agent at `now`: the rule's skills and groups, relaxed
        by its wait and queue signals, raised to the repeat-contact floor for a repeat
        contact, plus its language when the rule asks for one."""
        required = self.required_at(contact.waited_s(now), contact.signals)
        if contact.repeat and self.repeat_min_proficiency:
            floor = self.repeat_min_proficiency
            for skill, level in required.items():
                required[skill] = max(level, floor)
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
    for group in sorted(rule.agent_groups):
        check_name(f"rule.agent_groups[{group!r}]", group)
    if len(rule.agent_groups) > MAX_GROUPS:
        raise InvalidArgument("rule.agent_groups", f"at most {MAX_GROUPS} groups")
    _validate_steps(rule)
    _validate_weights(rule.weights)
    if not 0.0 <= rule.affinity_wait_s <= 3600.0:
        raise InvalidArgument("rule.affinity_wait", "must be 0..3600 s")
    if not 0.0 < rule.repeat_window_s <= 30 * 86400:
        raise InvalidArgument("rule.repeat_contacts.window", "must be 0 < s <= 30 days")
    if not 0 <= rule.repeat_priority_boost <= MAX_PRIORITY:
        raise InvalidArgument("rule.repeat_contacts.priority_boost", f"must be 0..{MAX_PRIORITY}")
    check_level(
        "rule.repeat_contacts.min_proficiency", rule.repeat_min_proficiency, allow_zero=True
    )
    return rule


def _validate_steps(rule: Rule) -> None:
    """Steps come in order of waiting time (strictly increasing among time-only steps);
    a step that could never change what is required, or whose queue condition could never
    hold, is rejected with the reason."""
    previous, previous_timed = -1.0, -1.0
    certain = dict(rule.skills)  # with every earlier time-only step applied
    everything = dict(rule.skills)  # with every earlier step applied
    groups_certain, groups_all = set(rule.agent_groups), set(rule.agent_groups)
    for i, step in enumerate(rule.steps):
        where = f"rule.steps[{i}]"
        if not step.after_s >= 0 or step.after_s != step.after_s:
            raise InvalidArgument(f"{where}.after", "must be a non-negative duration")
        if step.after_s < previous or (not step.on_queue_state and step.after_s <= previous_timed):
            raise InvalidArgument(
                f"{where}.after", "steps must be in strictly increasing order of waiting time"
            )
        _validate_conditions(where, step)
        if not step.min_proficiency and not step.add_groups:
            raise InvalidArgument(
                f"{where}.skills", "a step must change at least one skill or add a group"
            )
        for skill, level in step.min_proficiency.items():
            check_name(f"{where}.skills[{skill!r}]", skill)
            check_level(f"{where}.skills[{skill!r}]", level, allow_zero=True)
        for group in sorted(step.add_groups):
            check_name(f"{where}.add_agent_groups[{group!r}]", group)
        if step.add_groups and not rule.agent_groups:
            raise InvalidArgument(
                f"{where}.add_agent_groups",
                "can never apply: the rule names no agent_groups, so every group may "
                "take its contacts already",
            )
        if len(step.add_groups) > MAX_GROUPS:
            raise InvalidArgument(f"{where}.add_agent_groups", f"at most {MAX_GROUPS} groups")
        changes = [
            any(req.get(skill, 0) != level for skill, level in step.min_proficiency.items())
            or not step.add_groups <= groups
            for req, groups in ((certain, groups_certain), (everything, groups_all))
        ]
        if not any(changes):
            raise InvalidArgument(
                where, "can never apply: it changes nothing the earlier steps set"
            )
        targets = (
            ((everything, groups_all),)
            if step.on_queue_state
            else ((certain, groups_certain), (everything, groups_all))
        )
        for req, groups in targets:
            for skill, level in step.min_proficiency.items():
                if level == 0:
                    req.pop(skill, None)
                else:
                    req[skill] = level
            groups |= step.add_groups
        previous = step.after_s
        if not step.on_queue_state:
            previous_timed = step.after_s


def _validate_conditions(where: str, step: RelaxationStep) -> None:
    over = step.expected_wait_over_s
    if over is not None and not 0 < over <= 30 * 86400:
        raise InvalidArgument(
            f"{where}.expected_wait_over", "can never apply: must be 0 < s <= 30 days"
        )
    below = step.service_level_below
    if below is not None and not 0 < below <= 1:
        raise InvalidArgument(
            f"{where}.service_level_below",
            "can never apply: service level is never below 0 (must be in (0, 1])",
        )
    at_most = step.eligible_at_most
    if at_most is not None and not 0 <= at_most <= 100_000:
        raise InvalidArgument(
            f"{where}.eligible_agents_at_most", "can never apply: must be 0..100000"
        )


def _validate_weights(weights: Weights) -> None:
    for name in ("proficiency", "idle", "occupancy", "affinity"):
        value = getattr(weights, name)
        if not 0.0 <= value <= 100.0:
            raise InvalidArgument(f"rule.weights.{name}", "must be 0..100")
    if not weights.idle_horizon_s > 0:
        raise InvalidArgument("rule.weights.idle_horizon", "must be positive")
