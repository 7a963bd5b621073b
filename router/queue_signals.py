"""Queue signals for relaxation steps that trigger on queue state (``QueueSignals``).

For a contact whose rule has such a step, the live pass (and the simulator, with its own
counts) measures, for the contact's issue and channel:

* ``expected_wait_s``: ``router.estimate.expected_wait`` with the contacts waiting in the
  issue-and-channel view, the eligible signed-in agents' slots on the channel (free and
  in all) and today's average handle time -- the same method as ``EstimateWait``;
* ``service_level``: today's answered within target over answered and abandoned (1 when
  there are none yet);
* ``eligible_agents``: available agents holding every skill the contact needs under its
  waiting-time steps (queue-state steps excluded, so a step cannot feed on itself).

Pure: no I/O. The live service reads the counts from Redis (``router.signals.SignalSource``);
the simulator keeps its own (``simulations.queue_state``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

from router.assign import Floor
from router.domain import AgentState, Contact, QueueSignals
from router.estimate import expected_wait
from router.rules import Rule
from router.scoring import has_skills


def needs_signals(rule: Rule) -> bool:
    """Has the rule a step that triggers on queue state?"""
    return any(step.on_queue_state for step in rule.steps)


def measure(
    contact: Contact,
    rule: Rule,
    floor: Floor,
    waiting: Mapping[str, int],
    stats: Mapping[str, str],
    now: float,
) -> QueueSignals:
    """The queue signals of `contact` at `now` (see the module docstring)."""
    required = rule.requirements(replace(contact, signals=None), now)
    channel = contact.channel
    slots = free = eligible = 0
    for agent in floor.candidates(required) if required else floor:
        if agent.state is AgentState.SIGNED_OUT or not has_skills(agent, required):
            continue
        if agent.state is AgentState.AVAILABLE:
            eligible += 1
            slots += agent.capacity.get(channel, 0)
            free += agent.free_slots(channel)
    prefix = f"{contact.issue}:{channel.value}:"
    handled = int(stats.get(prefix + "handled", 0))
    aht = int(stats.get(prefix + "handle_ms", 0)) / 1000 / handled if handled else None
    ahead = waiting.get(f"{contact.issue}:{channel.value}", 0)
    estimate = expected_wait(ahead, slots, free, aht)
    answered = int(stats.get(prefix + "answered", 0))
    abandoned = int(stats.get(prefix + "abandoned", 0))
    in_target = int(stats.get(prefix + "in_target", 0))
    total = answered + abandoned
    return QueueSignals(
        expected_wait_s=estimate.wait_s,
        service_level=in_target / total if total else 1.0,
        eligible_agents=eligible,
    )


def utc_day(now_s: float) -> str:
    """The UTC day (``yyyymmdd``) counters are kept under."""
    return datetime.fromtimestamp(now_s, UTC).strftime("%Y%m%d")
