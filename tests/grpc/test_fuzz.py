"""Fuzzing every RPC from the proto descriptors: each call is answered with a named status
(never UNKNOWN or INTERNAL) and a refused call leaves Redis as it was.

For each RPC (one test each, so that a failure names it), a fresh replica on a small floor
(``tests.grpc.fuzz_target``) takes `OMNIROUTE_FUZZ_EXAMPLES` generated calls (default
1,000; ``make fuzz`` runs 10,000; the same calls on every run unless `OMNIROUTE_FUZZ_SEED`
names another seed): requests built field by field from the method's input descriptor, or
mutants of a valid one, most of them malformed by construction
(``tests.grpc.proto_strategies``), with now and then a broken encoding and mostly the
strongest key the RPC admits, else a weaker, foreign, revoked, malformed or missing key, or
large headers; and one request over the size limit and one header over gRPC's
(``tests.grpc.fuzz_calls``). Streams are read for their first message or their status
under a short deadline. After each refused call the Redis digest must be unchanged; an
accepted call (a request that happens to be valid, a stream that opened) resets the
baseline once its effects have settled. At the end the terminal summary shows, per RPC,
how many calls were refused and accepted, by status, and the time taken.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog
from google.protobuf import message_factory
from hypothesis import HealthCheck, Phase, example, given, seed, settings

from queues.cluster import is_cluster_url
from tests.grpc.fuzz_calls import Case, call_cases, oversize_cases
from tests.grpc.fuzz_target import METHODS, Target

EXAMPLES = int(os.environ.get("OMNIROUTE_FUZZ_EXAMPLES", "1000"))
#: Unset: the same calls on every run; a number: other calls, the same for that number.
SEED = os.environ.get("OMNIROUTE_FUZZ_SEED")
#: At least this share of each RPC's calls must be refused (malformed by construction).
MIN_REFUSED = 0.6


@dataclass
class Tally:
    """Outcomes per RPC ("OK (stream open)" for a stream still open at its deadline)."""

    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def refused(self, rpc: str) -> int:
        return sum(n for code, n in self.outcomes[rpc].items() if not code.startswith("OK"))

    def lines(self) -> Iterator[str]:
        total = Counter[str]()
        yield f"{'rpc':42} {'calls':>6} {'refused':>8} {'accepted':>8} {'s':>6}  statuses"
        for rpc, counts in sorted(self.outcomes.items()):
            total.update(counts)
            calls, refused = sum(counts.values()), self.refused(rpc)
            yield (
                f"{rpc:42} {calls:6d} {refused:8d} {calls - refused:8d} "
                f"{self.seconds.get(rpc, 0):6.1f}  {_codes(counts)}"
            )
        calls = sum(total.values())
        refused = sum(n for c, n in total.items() if not c.startswith("OK"))
        yield (
            f"{f'all {len(self.outcomes)} RPCs':42} {calls:6d} {refused:8d} {calls - refused:8d} "
            f"{sum(self.seconds.values()):6.1f}  {_codes(total)}"
        )


def _codes(counts: Counter[str]) -> str:
    return ", ".join(f"{code} {n}" for code, n in counts.most_common())


class _Report:
    """A pytest plugin printing the tally in the terminal summary."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.tally.outcomes:
            seeded = f", seed {SEED}" if SEED is not None else ""
            title = f"fuzzing from the proto descriptors, {EXAMPLES} per RPC{seeded}"
            terminalreporter.section(title)
            for line in self.tally.lines():
                terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Tally:
    """The module's outcomes, shown in the terminal summary."""
    tally = Tally()
    request.config.pluginmanager.register(_Report(tally), "omniroute-fuzz-report")
    return tally


@pytest.fixture
def target(redis_url: str) -> Iterator[Target]:
    """A fresh replica and floor, so that each RPC starts from the same state."""
    if is_cluster_url(redis_url):
        pytest.skip("the fuzz digest reads one Redis node")
    # Errors only: the replica would log a warning for each of thousands of refused calls.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    target = Target(redis_url)
    yield target
    target.close()


@pytest.mark.parametrize("rpc", sorted(METHODS))
def test_every_generated_call_gets_a_named_status_and_a_refused_one_changes_nothing(
    target: Target, tally: Tally, rpc: str
) -> None:
    method, strongest, seeds = METHODS[rpc], target.strongest(rpc), target.seeds.get(rpc, [])
    cases = call_cases(method, target.floor, target.keys, strongest, seeds)
    base = seeds[0] if seeds else message_factory.GetMessageClass(method.input_type)()
    counts = tally.outcomes.setdefault(rpc, Counter())
    started = time.perf_counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def call(case: Case) -> None:
        counts[target.check(rpc, case).name] += 1

    for case in oversize_cases(method, target.keys, strongest, base):
        call = example(case=case)(call)
    if SEED is not None:
        call = seed(int(SEED))(call)
    try:
        call()
    finally:
        tally.seconds[rpc] = time.perf_counter() - started
    calls = sum(counts.values())
    assert calls >= EXAMPLES, f"{rpc}: only {calls} calls generated"
    assert counts["RESOURCE_EXHAUSTED"] >= 2, f"{rpc}: oversize calls not refused: {counts}"
    assert tally.refused(rpc) >= MIN_REFUSED * calls, f"{rpc}: {dict(counts)}"
