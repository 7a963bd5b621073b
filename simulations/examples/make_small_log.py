"""Write ``small_log.csv``: a small synthetic multi-channel contact log for tests and the demo.

Seeded, so the file is the same on every run: ``python simulations/examples/make_small_log.py``.
Two weekdays, 9:00–17:00 with a midday peak; voice, chat and e-mail; issues billing, tech and
sales; six agents with different skills, each serving one contact at a time, first come first
served; voice and chat customers abandon after an exponential patience.
"""

from __future__ import annotations

import csv
import math
import random
from datetime import UTC, datetime
from pathlib import Path

SEED = 20240304
DAYS = ("2024-03-04", "2024-03-05")
CHANNELS = {"voice": 0.5, "chat": 0.3, "email": 0.2}
ISSUES = {"billing": 0.5, "tech": 0.3, "sales": 0.2}
HANDLE_MEDIAN_S = {"billing": 240.0, "tech": 420.0, "sales": 300.0}
PATIENCE_MEAN_S = {"voice": 120.0, "chat": 300.0, "email": math.inf}
AGENTS = {
    "ada": ("billing", "sales"),
    "bob": ("billing",),
    "cy": ("tech",),
    "dee": ("tech", "billing"),
    "eve": ("sales", "billing"),
    "fay": ("tech", "sales", "billing"),
}
HEADER = (
    "id",
    "arrived_at",
    "channel",
    "issue",
    "priority",
    "customer_id",
    "wait_s",
    "outcome",
    "handle_s",
    "agent_id",
)


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _arrivals(rng: random.Random, day: str) -> list[float]:
    """A Poisson process of 30/h with a midday bump, by thinning."""
    start = datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC).timestamp()
    times, now, peak_per_s = [], start, 45 / 3600
    while (now := now + rng.expovariate(peak_per_s)) < start + 8 * 3600:
        hour = (now - start) / 3600
        if rng.random() < (20 + 25 * math.exp(-((hour - 3.5) ** 2) / 2)) / 45:
            times.append(now)
    return times


def rows(seed: int = SEED) -> list[tuple[str, ...]]:
    """Every row of the log, in arrival order."""
    rng = random.Random(seed)
    free_at = dict.fromkeys(AGENTS, 0.0)
    out: list[tuple[str, ...]] = []
    arrivals = sorted(t for day in DAYS for t in _arrivals(rng, day))
    for number, arrived in enumerate(arrivals, start=1):
        channel, issue = _pick(rng, CHANNELS), _pick(rng, ISSUES)
        priority = rng.choices((0, 1, 2), weights=(75, 20, 5))[0]
        customer = "" if rng.random() < 0.2 else f"cust{rng.randint(1, 150):03d}"
        handle = rng.lognormvariate(math.log(HANDLE_MEDIAN_S[issue]), 0.6)
        agent = min((a for a, s in AGENTS.items() if issue in s), key=lambda a: free_at[a])
        wait = max(0.0, free_at[agent] - arrived)
        patience = rng.expovariate(1 / PATIENCE_MEAN_S[channel]) if channel != "email" else 1e9
        if rng.random() < 0.01:
            outcome, wait, handle_text, agent_id = "phantom", min(wait, patience), "", ""
        elif wait > patience:
            outcome, wait, handle_text, agent_id = "abandoned", patience, "", ""
        else:
            free_at[agent] = arrived + wait + handle
            outcome, handle_text, agent_id = "served", f"{handle:.0f}", agent
        stamp = datetime.fromtimestamp(arrived, UTC).strftime("%Y-%m-%d %H:%M:%S")
        out.append(
            (
                f"c{number:04d}",
                stamp,
                channel,
                issue,
                str(priority),
                customer,
                f"{wait:.0f}",
                outcome,
                handle_text,
                agent_id,
            )
        )
    return out


def main() -> None:
    """Write the log beside this script."""
    path = Path(__file__).with_name("small_log.csv")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows())


if __name__ == "__main__":
    main()
