"""What supervisors type, turned into API messages: ``billing=4`` skills, ``voice=1``
capacities, ``30s:billing=2`` relaxation steps, and routing rules from a YAML file.

Flag values are checked for form only (the service checks ranges and answers
INVALID_ARGUMENT naming the field); a rules file is checked fully here so that a mistake
is reported with its line and field before anything is sent.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml
from google.protobuf.duration_pb2 import Duration

from router.pb.omniroute.v1 import resources_pb2 as pb

NAME_RE = re.compile(r"^[a-z][a-z0-9_.:\-]{0,62}$")
CHANNELS = ("voice", "chat", "sms", "email", "whatsapp", "social")
WEIGHTS = ("proficiency", "idle", "occupancy", "affinity")
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
T = TypeVar("T")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class SpecError(ValueError):
    """A malformed value; ``str()`` is the message for the user."""


def channel_pb(name: str) -> str:
    """``voice`` -> ``CHANNEL_VOICE`` (messages take enum values by name)."""
    if name.lower() not in CHANNELS:
        raise SpecError(f"unknown channel {name!r} (one of {', '.join(CHANNELS)})")
    return f"CHANNEL_{name.upper()}"


def channel_label(value: int) -> str:
    """``CHANNEL_VOICE`` -> ``voice``."""
    return pb.Channel.Name(value).removeprefix("CHANNEL_").lower()


def duration_s(text: str) -> float:
    """``20s``, ``1.5m``, ``2h``, ``500ms`` or plain seconds."""
    match = _DURATION_RE.match(text.strip().lower())
    if match is None:
        raise SpecError(f"{text!r} is not a duration (e.g. 20s, 1.5m, 2h)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def duration_pb(seconds: float) -> Duration:
    """A Duration message of `seconds`."""
    d = Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def _pair(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise SpecError(f"{text!r} is not {what}")
    return key.strip(), value.strip()


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SpecError(f"{text!r} is not a whole number ({what})") from None


def skill_spec(text: str) -> pb.Skill:
    """``billing=4`` -> Skill (the level's range is the service's to check)."""
    name, level = _pair(text, "SKILL=LEVEL, e.g. billing=4")
    return pb.Skill(skill=name, proficiency=_int(level, "the proficiency"))


def requirement_spec(text: str) -> pb.SkillRequirement:
    """``billing=3`` -> SkillRequirement."""
    name, level = _pair(text, "SKILL=LEVEL, e.g. billing=3")
    return pb.SkillRequirement(skill=name, min_proficiency=_int(level, "the proficiency"))


def capacity_spec(text: str) -> pb.ChannelCapacity:
    """``chat=3`` -> ChannelCapacity."""
    name, count = _pair(text, "CHANNEL=N, e.g. chat=3")
    return pb.ChannelCapacity(channel=channel_pb(name), max_contacts=_int(count, "contacts"))


def step_spec(text: str) -> pb.RelaxationStep:
    """``30s:billing=2,lang.en=0`` or ``2m:@overflow`` (add agent group `overflow`) ->
    RelaxationStep."""
    after, sep, rest = text.partition(":")
    parts = [part.strip() for part in rest.split(",") if part.strip()]
    if not sep or not parts:
        raise SpecError(
            f"{text!r} is not AFTER:SKILL=LEVEL|@GROUP[,...], e.g. 30s:billing=2 or 2m:@overflow"
        )
    step = pb.RelaxationStep(after=duration_pb(duration_s(after)))
    for part in parts:
        if part.startswith("@"):
            step.add_agent_groups.append(part[1:])
        else:
            step.skills.append(requirement_spec(part))
    return step


def target_spec(text: str) -> pb.ChannelTarget:
    """``voice=20s`` -> ChannelTarget."""
    name, after = _pair(text, "CHANNEL=DURATION, e.g. voice=20s")
    return pb.ChannelTarget(channel=channel_pb(name), answer_target=duration_pb(duration_s(after)))


def weights_spec(text: str) -> pb.ScoringWeights:
    """``proficiency=1,idle=1,idle_horizon=600s`` -> ScoringWeights (unnamed: defaults)."""
    weights = pb.ScoringWeights()
    for part in text.split(","):
        if not part.strip():
            continue
        name, value = _pair(part, "NAME=NUMBER")
        if name == "idle_horizon":
            weights.idle_horizon.CopyFrom(duration_pb(duration_s(value)))
        elif name in WEIGHTS:
            try:
                setattr(weights, name, float(value))
            except ValueError:
                raise SpecError(f"{value!r} is not a number (weight {name})") from None
        else:
            raise SpecError(f"unknown weight {name!r} (one of {', '.join(WEIGHTS)}, idle_horizon)")
    return weights


def arg_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Wrap a spec parser for argparse: a SpecError becomes a usage error (exit 2)."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except SpecError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value").removesuffix("_spec")
    return convert


# --- rules files ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileRule:
    """One rule read from a file, with the line it starts on."""

    issue: str
    line: int
    rule: pb.RoutingRule


class RulesFileError(ValueError):
    """A mistake in a rules file: ``path:line: field: problem``."""

    def __init__(self, line: int, field: str, problem: str) -> None:
        super().__init__(f"line {line}: {field}: {problem}")
        self.line = line
        self.field = field
        self.problem = problem


_RULE_FIELDS = (
    "issue",
    "description",
    "skills",
    "agent_groups",
    "steps",
    "service_level",
    "targets",
    "weights",
    "require_language",
    "bot_first",
    "affinity_wait",
    "repeat_contacts",
)
_STEP_FIELDS = (
    "after",
    "skills",
    "add_agent_groups",
    "expected_wait_over",
    "service_level_below",
    "eligible_agents_at_most",
)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _mapping(node: yaml.Node, field: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise RulesFileError(_line(node), field, "must be a mapping")
    items: list[tuple[str, yaml.Node, yaml.Node]] = []
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise RulesFileError(_line(key), field, "keys must be plain words")
        items.append((str(key.value), key, value))
    return items


def _scalar(node: yaml.Node, field: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise RulesFileError(_line(node), field, "must be a single value")
    return str(node.value)


def _name(node: yaml.Node, field: str, what: str) -> str:
    value = _scalar(node, field)
    if not NAME_RE.match(value):
        raise RulesFileError(
            _line(node), field, f"{value!r} is not a {what} name (lower-case, digits, _-.:)"
        )
    return value


def _level(node: yaml.Node, field: str, lowest: int) -> int:
    text = _scalar(node, field)
    try:
        level = int(text)
    except ValueError:
        raise RulesFileError(_line(node), field, f"{text!r} is not a whole number") from None
    if not lowest <= level <= 5:
        raise RulesFileError(_line(node), field, f"must be {lowest}..5, got {level}")
    return level


def _seconds(node: yaml.Node, field: str) -> Duration:
    try:
        seconds = duration_s(_scalar(node, field))
    except SpecError as exc:
        raise RulesFileError(_line(node), field, str(exc)) from None
    return duration_pb(seconds)


def _number(node: yaml.Node, field: str, low: float, high: float) -> float:
    text = _scalar(node, field)
    try:
        value = float(text)
    except ValueError:
        raise RulesFileError(_line(node), field, f"{text!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise RulesFileError(_line(node), field, f"must be in {low}..{high}, got {text}")
    return value


def _requirements(node: yaml.Node, field: str, lowest: int) -> list[pb.SkillRequirement]:
    return [
        pb.SkillRequirement(
            skill=_name(key, f"{field}.{name}", "skill"),
            min_proficiency=_level(value, f"{field}.{name}", lowest),
        )
        for name, key, value in _mapping(node, field)
    ]


def _names(node: yaml.Node, field: str, what: str) -> list[str]:
    """A list of names (``[a, b]``), or one name."""
    if isinstance(node, yaml.SequenceNode):
        return [_name(item, f"{field}[{i}]", what) for i, item in enumerate(node.value)]
    return [_name(node, field, what)]


def _whole(node: yaml.Node, field: str, low: int, high: int) -> int:
    text = _scalar(node, field)
    try:
        value = int(text)
    except ValueError:
        raise RulesFileError(_line(node), field, f"{text!r} is not a whole number") from None
    if not low <= value <= high:
        raise RulesFileError(_line(node), field, f"must be {low}..{high}, got {value}")
    return value


def _steps(node: yaml.Node, field: str) -> list[pb.RelaxationStep]:
    if not isinstance(node, yaml.SequenceNode):
        raise RulesFileError(_line(node), field, "must be a list of {after, skills}")
    steps = []
    for i, item in enumerate(node.value):
        where = f"{field}[{i}]"
        step = pb.RelaxationStep()
        for name, key, value in _mapping(item, where):
            at = f"{where}.{name}"
            if name == "after":
                step.after.CopyFrom(_seconds(value, at))
            elif name == "skills":
                step.skills.extend(_requirements(value, at, 0))
            elif name == "add_agent_groups":
                step.add_agent_groups.extend(_names(value, at, "group"))
            elif name == "expected_wait_over":
                step.expected_wait_over.CopyFrom(_seconds(value, at))
            elif name == "service_level_below":
                step.service_level_below = _number(value, at, 0.0, 1.0)
            elif name == "eligible_agents_at_most":
                step.eligible_agents_at_most = _whole(value, at, 0, 100_000)
            else:
                raise RulesFileError(
                    _line(key), at, f"unknown field (one of {', '.join(_STEP_FIELDS)})"
                )
        if not step.HasField("after") or not (step.skills or step.add_agent_groups):
            raise RulesFileError(
                _line(item), where, "needs `after` and `skills` or `add_agent_groups`"
            )
        steps.append(step)
    return steps


def _repeat(node: yaml.Node, field: str) -> pb.RepeatContactPolicy:
    policy = pb.RepeatContactPolicy()
    for name, key, value in _mapping(node, field):
        at = f"{field}.{name}"
        if name == "window":
            policy.window.CopyFrom(_seconds(value, at))
        elif name == "priority_boost":
            policy.priority_boost = _whole(value, at, 0, 9)
        elif name == "min_proficiency":
            policy.min_proficiency = _level(value, at, 0)
        else:
            raise RulesFileError(
                _line(key), at, "unknown field (one of window, priority_boost, min_proficiency)"
            )
    return policy


def _rule(node: yaml.Node, field: str, issue: str | None) -> FileRule:
    rule = pb.RoutingRule()
    for name, key, value in _mapping(node, field):
        where = f"{field}.{name}"
        if name == "issue":
            issue = _name(value, where, "issue")
        elif name == "description":
            rule.description = _scalar(value, where)
        elif name == "skills":
            rule.required_skills.extend(_requirements(value, where, 1))
        elif name == "steps":
            rule.relaxation_steps.extend(_steps(value, where))
        elif name == "agent_groups":
            rule.agent_groups.extend(_names(value, where, "group"))
        elif name == "affinity_wait":
            rule.affinity_wait.CopyFrom(_seconds(value, where))
        elif name == "repeat_contacts":
            rule.repeat_contacts.CopyFrom(_repeat(value, where))
        elif name == "service_level":
            rule.service_level = _number(value, where, 0.01, 1.0)
        elif name == "targets":
            for ch, ch_key, after in _mapping(value, where):
                if ch not in CHANNELS:
                    raise RulesFileError(_line(ch_key), f"{where}.{ch}", "unknown channel")
                rule.answer_targets.add(
                    channel=channel_pb(ch), answer_target=_seconds(after, f"{where}.{ch}")
                )
        elif name == "weights":
            for w, w_key, amount in _mapping(value, where):
                if w == "idle_horizon":
                    rule.weights.idle_horizon.CopyFrom(_seconds(amount, f"{where}.{w}"))
                elif w in WEIGHTS:
                    setattr(rule.weights, w, _number(amount, f"{where}.{w}", 0.0, 100.0))
                else:
                    raise RulesFileError(_line(w_key), f"{where}.{w}", "unknown weight")
        elif name in ("require_language", "bot_first"):
            text = _scalar(value, where).lower()
            if text not in ("true", "false", "yes", "no"):
                raise RulesFileError(_line(value), where, "must be true or false")
            setattr(rule, name, text in ("true", "yes"))
        else:
            raise RulesFileError(
                _line(key), where, f"unknown field (one of {', '.join(_RULE_FIELDS)})"
            )
    if issue is None:
        raise RulesFileError(_line(node), f"{field}.issue", "required")
    if not rule.required_skills:
        raise RulesFileError(_line(node), f"{field}.skills", "at least one required skill")
    return FileRule(issue, _line(node), rule)


def parse_rules_text(text: str) -> list[FileRule]:
    """Rules from YAML: ``rules:`` as a mapping issue -> rule, or a list of rules with
    ``issue``. RulesFileError names the line and field of the first mistake."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = int(mark.line) + 1 if mark is not None else 1
        raise RulesFileError(line, "yaml", str(exc.problem)) from None
    if root is None:
        raise RulesFileError(1, "rules", "the file is empty")
    top = {name: value for name, _, value in _mapping(root, "file")}
    if set(top) != {"rules"}:
        raise RulesFileError(_line(root), "file", "must hold exactly one key, `rules`")
    node = top["rules"]
    if isinstance(node, yaml.SequenceNode):
        rules = [_rule(item, f"rules[{i}]", None) for i, item in enumerate(node.value)]
    else:
        rules = [
            _rule(value, f"rules.{name}", _name(key, f"rules.{name}", "issue"))
            for name, key, value in _mapping(node, "rules")
        ]
    seen: set[str] = set()
    for r in rules:
        if r.issue in seen:
            raise RulesFileError(r.line, "rules", f"issue {r.issue!r} appears twice")
        seen.add(r.issue)
    return rules


def read_rules_file(path: Path) -> list[FileRule]:
    """Rules from a YAML file (see ``parse_rules_text``)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RulesFileError(0, str(path), exc.strerror or "cannot read") from exc
    return parse_rules_text(text)
