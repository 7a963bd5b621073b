"""Reading YAML with the line and field of every mistake.

PyYAML's node tree keeps where each value was written; `Field` walks it, converts scalars,
and raises `ScenarioError("scenario.yaml:12: streams[0].handle.mean: ...")` so a planner can
go straight to the line. Durations read as seconds: ``90``, ``"90s"``, ``"5m"``, ``"1.5h"``,
``"1d"``, ``"2h15m"`` or a clock time ``"08:30"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import yaml

from router.errors import InvalidArgument

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h|d)?\s*$")
_COMPOUND = re.compile(r"^(?:\s*\d+(?:\.\d*)?\s*(?:d|h|min|m|sec|s)\s*)+$")
_PART = re.compile(r"(\d+(?:\.\d*)?)\s*(d|h|min|m|sec|s)")
_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_CONSTRUCTOR = yaml.SafeLoader("")


class ScenarioError(InvalidArgument):
    """A scenario that cannot be run; the message is ``file:line: field: problem``."""

    def __init__(self, source: str, line: int, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.source = source
        self.line = line
        self.args = (f"{source}:{line}: {field}: {problem}",)

    def __str__(self) -> str:
        return str(self.args[0])


def compose(text: str, source: str) -> Field:
    """The root of a YAML document, or ScenarioError for YAML that does not parse."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ScenarioError(source, line, "(yaml)", str(exc.problem or exc)) from exc
    except yaml.reader.ReaderError as exc:  # a control character: YAML has no mark for it
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        problem = f"character #x{exc.character:04x} is not allowed in YAML"
        raise ScenarioError(source, line, "(yaml)", problem) from exc
    except RecursionError as exc:  # the composer recurses once per level of nesting
        raise ScenarioError(source, 1, "(yaml)", "nested too deeply") from exc
    if node is None:
        raise ScenarioError(source, 1, "(document)", "the scenario is empty")
    return Field(node, "", source)


class Field:
    """One value of the document, with its path (``agents[2].skills``) and line."""

    def __init__(self, node: yaml.Node, path: str, source: str) -> None:
        self.node = node
        self.path = path
        self.source = source

    @property
    def line(self) -> int:
        """1-based line where the value starts."""
        return int(self.node.start_mark.line) + 1

    def error(self, problem: str) -> ScenarioError:
        """An error about this value."""
        return ScenarioError(self.source, self.line, self.path or "(document)", problem)

    def _child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def mapping(
        self, allowed: set[str], required: frozenset[str] | set[str] = frozenset()
    ) -> dict[str, Field]:
        """The fields of a mapping; unknown, duplicate or missing keys are errors."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"expected a mapping of fields ({', '.join(sorted(allowed))})")
        out: dict[str, Field] = {}
        for key_node, value_node in self.node.value:
            key = str(key_node.value)
            where = Field(key_node, self._child_path(key), self.source)
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                raise where.error(f"unknown field {key!r} (expected one of: {hint})")
            if key in out:
                raise where.error("given twice")
            out[key] = Field(value_node, self._child_path(key), self.source)
        for key in sorted(required - out.keys()):
            raise self.error(f"missing field {key!r}")
        return out

    def items(self) -> Iterator[tuple[str, Field]]:
        """Key and value of a free-form mapping (e.g. skills: {billing: 3})."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error("expected a mapping")
        seen: set[str] = set()
        for key_node, value_node in self.node.value:
            key = str(key_node.value)
            if key in seen:
                raise Field(key_node, self._child_path(key), self.source).error("given twice")
            seen.add(key)
            yield key, Field(value_node, self._child_path(key), self.source)

    def sequence(self, non_empty: bool = False) -> list[Field]:
        """The items of a list."""
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error("expected a list")
        if non_empty and not self.node.value:
            raise self.error("must not be empty")
        return [Field(n, self._child_path(i), self.source) for i, n in enumerate(self.node.value)]

    def is_scalar(self) -> bool:
        """Is the value a single value (not a list or mapping)?"""
        return isinstance(self.node, yaml.ScalarNode)

    def is_sequence(self) -> bool:
        """Is the value a list?"""
        return isinstance(self.node, yaml.SequenceNode)

    def scalar(self) -> object:
        """The plain value (str, int, float, bool or None)."""
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.error("expected a single value, not a list or mapping")
        return _CONSTRUCTOR.construct_object(self.node)

    def text(self) -> str:
        """A string."""
        value = self.scalar()
        if not isinstance(value, str) or not value:
            raise self.error(f"expected a non-empty text, got {value!r}")
        return value

    def choice(self, options: tuple[str, ...]) -> str:
        """One of `options`."""
        value = self.scalar()
        if value not in options:
            raise self.error(f"must be one of {', '.join(options)}; got {value!r}")
        return str(value)

    def boolean(self) -> bool:
        """true or false."""
        value = self.scalar()
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {value!r}")
        return value

    def integer(self, low: int = 0, high: int = 10**9) -> int:
        """An integer in [low, high]."""
        value = self.scalar()
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected a whole number, got {value!r}")
        if not low <= value <= high:
            raise self.error(f"must be between {low} and {high}, got {value}")
        return value

    def number(self, low: float = 0.0, high: float = math.inf) -> float:
        """A finite number in [low, high]."""
        value = self.scalar()
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"expected a number, got {value!r}")
        if not math.isfinite(value) or not low <= value <= high:
            raise self.error(f"must be between {low:g} and {high:g}, got {value!r}")
        return float(value)

    def duration(self, positive: bool = False) -> float:
        """Seconds, from 90, '90s', '5m', '1.5h', '1d' or a clock time '08:30'."""
        value = self.scalar()
        seconds: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str):
            match, clock = _DURATION.match(value), _CLOCK.match(value)
            if match:
                seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
            elif _COMPOUND.match(value):
                seconds = sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(value))
            elif clock:
                h, m, s = int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0)
                seconds = h * 3600.0 + m * 60.0 + s
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            raise self.error(
                f"expected a duration like 90, '90s', '5m', '2h' or '08:30', got {value!r}"
            )
        if positive and seconds <= 0:
            raise self.error("must be a positive duration")
        return seconds
