"""Queue signals in a simulated run, for rules whose steps trigger on queue state.

The live service measures them with ``router.queue_signals.measure`` from the tenant's queue
views (waiting contacts per issue and channel) and today's counters (``accept_offer.lua``,
``abandon.lua``, ``complete.lua``). `QueueState` keeps the same counts for the run and
hands them to that very function, so the definitions are the live ones:

* waiting: contacts waiting for a person, per ``issue:channel`` (bots' contacts excluded);
* ``answered`` and ``in_target``: a person's answer, its wait measured from the contact's
  entry into the people's queue (arrival, or a bot's escalation: ``Job.since``) against
  the rule's target for the channel;
* ``abandoned``: a waiting contact the customer left;
* ``handled`` and ``handle_ms``: a person's completion and its handle time (ms);
* counters start again each simulated day (``now // 86400``), like the live UTC day.

Only issues whose rule has a queue-state step are counted (`issues`); the engine builds a
`QueueState` only when some rule has one, so other plans pay nothing (this module is not
even imported).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace

from router.assign import Floor
from router.domain import Channel, Contact, QueueSignals
from router.queue_signals import measure, needs_signals
from router.rules import Rule

DAY_S = 86_400.0


class _Text(Mapping[str, str]):
    """Integer counters read as the strings a Redis hash gives (what `measure` parses)."""

    def __init__(self, counts: dict[str, int]) -> None:
        self._counts = counts

    def __getitem__(self, key: str) -> str:
        return str(self._counts[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)


class QueueState:
    """Waiting counts and today's counters of the issues in `issues`."""

    def __init__(self, rules: Mapping[str, Rule]) -> None:
        self.issues = frozenset(issue for issue, rule in rules.items() if needs_signals(rule))
        #: Waiting contacts per channel, of these issues (the engine's cheap test).
        self.waiting_on: dict[Channel, int] = dict.fromkeys(Channel, 0)
        self._waiting: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._stats = _Text(self._counts)
        self._day = 0
        self._cache: dict[tuple[str, Channel, str, int], QueueSignals] = {}

    def signals(self, contact: Contact, rule: Rule, floor: Floor, now: float) -> QueueSignals:
        """The signals of waiting `contact` at `now`, as the live pass measures them; shared
        by the contacts of one issue, channel, language and waiting-time step, as live
        (``SignalSource.annotate``), until the next change (`changed`)."""
        self._today(now)
        key = (
            contact.issue,
            contact.channel,
            contact.language,
            rule.step_at(contact.waited_s(now)),
        )
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = measure(
                contact, rule, floor, self._waiting, self._stats, now
            )
        return found

    def with_signals(self, contact: Contact, rule: Rule, floor: Floor, now: float) -> Contact:
        """`contact` as the core should see it at `now`: with its signals."""
        return replace(contact, signals=self.signals(contact, rule, floor, now))

    def changed(self) -> None:
        """Something the signals read changed (floor, counts): measure again."""
        self._cache.clear()

    # -- the counts -----------------------------------------------------------------------

    def entered(self, contact: Contact) -> None:
        """`contact` (of one of `issues`) waits for a person."""
        name = f"{contact.issue}:{contact.channel.value}"
        self._waiting[name] = self._waiting.get(name, 0) + 1
        self.waiting_on[contact.channel] += 1
        self._cache.clear()

    def left(self, contact: Contact) -> None:
        """`contact` stopped waiting (answered, abandoned, or taken by a bot)."""
        self._waiting[f"{contact.issue}:{contact.channel.value}"] -= 1
        self.waiting_on[contact.channel] -= 1
        self._cache.clear()

    def answered(self, contact: Contact, wait_s: float, target_s: float, now: float) -> None:
        """A person took `contact` after `wait_s` in the people's queue."""
        self._add(contact, "answered", 1, now)
        if wait_s <= target_s:
            self._add(contact, "in_target", 1, now)

    def abandoned(self, contact: Contact, now: float) -> None:
        """The customer left while waiting."""
        self._add(contact, "abandoned", 1, now)

    def handled(self, contact: Contact, handle_s: float, now: float) -> None:
        """A person completed `contact` after `handle_s`."""
        self._add(contact, "handled", 1, now)
        self._add(contact, "handle_ms", int(handle_s * 1000), now)

    def _add(self, contact: Contact, name: str, amount: int, now: float) -> None:
        self._today(now)
        key = f"{contact.issue}:{contact.channel.value}:{name}"
        self._counts[key] = self._counts.get(key, 0) + amount
        self._cache.clear()

    def _today(self, now: float) -> None:
        day = int(now // DAY_S)
        if day != self._day:
            self._day = day
            self._counts.clear()
            self._cache.clear()
