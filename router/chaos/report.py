"""The published figures of a chaos run, as JSON and as a short Markdown report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from router.chaos.checker import Verdict


def write(figures: dict[str, Any], verdict: Verdict, out_dir: Path) -> Path:
    """Write ``report.json``, ``violations.json`` and ``report.md``; returns the last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(figures, indent=2, default=str))
    (out_dir / "violations.json").write_text(
        json.dumps([v.as_dict() for v in verdict.violations[:2000]], indent=2)
    )
    path = out_dir / "report.md"
    path.write_text(render(figures))
    return path


def render(figures: dict[str, Any]) -> str:
    """The report as Markdown."""
    v = figures["verdict"]
    cfg = figures["config"]
    faults = figures.get("faults_injected", {})
    rec = v.get("recovery", {})
    lines = [
        f"# Chaos run `{figures.get('label', 'chaos')}`",
        "",
        f"Load {cfg['load_s']:.0f} s, tenants {', '.join(cfg['tenants'])}, "
        f"{cfg['agents_per_tenant']} agents each, all six channels, offer timeout "
        f"{cfg['offer_timeout_s']} s, presence timeout {cfg['presence_timeout_s']} s, "
        f"seed {cfg['seed']}, replica module `{cfg['replica_module']}`; wall "
        f"{figures.get('wall_s')} s.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| contacts submitted (acknowledged or found) | {v['submitted']} |",
        f"| replica SIGKILLs | {faults.get('replica_kill', 0)} |",
        f"| replica pauses past the offer timeout | {faults.get('replica_pause', 0)} |",
        f"| replica SIGTERM restarts | {faults.get('replica_term', 0)} |",
        f"| Redis SIGKILL + restart from data dir | {faults.get('redis_kill', 0)} |",
        f"| Redis restarted from an older copy | {faults.get('redis_data_loss', 0)} |",
        f"| Redis stalls past the client timeout | {faults.get('redis_stall', 0)} |",
        f"| proxy faults (latency, reset, blackhole) | "
        f"{faults.get('proxy_latency', 0)}, {faults.get('proxy_reset', 0)}, "
        f"{faults.get('proxy_blackhole', 0)} |",
        f"| agent stream cuts / vanishes | {v['faults'].get('stream_cut', 0)} / "
        f"{v['faults'].get('agent_vanish', 0)} |",
        f"| **P1 double assignments** | **{v['P1_double_assignments']}** |",
        f"| **P2 capacity overruns** | **{v['P2_capacity_overruns']}** |",
        f"| **P3 lost contacts** | **{v['P3_lost_contacts']}** |",
        f"| open at the end of load / after drain: completed, abandoned | {v['open_end']} / "
        f"{v['completed_drained']}, {v['abandoned_drained']} |",
        f"| recovery (holder death to re-offer) n, p50, p99, max | {rec.get('n', 0)}, "
        f"{rec.get('p50_s', '-')} s, {rec.get('p99_s', '-')} s, {rec.get('max_s', '-')} s "
        f"(offer timeout {cfg['offer_timeout_s']} s) |",
        f"| offers answered through another replica (no re-offer needed) | "
        f"{v.get('survived_without_reoffer', 0)} |",
        f"| pending offers never seen again (notice lost, contact closed later) | "
        f"{v.get('unrecovered', 0)} |",
        f"| first violation after load start | {figures.get('detection_s')} s |",
        f"| persistence | {figures.get('persistence')} |",
        "",
        "Recovery by fault kind:",
        "",
    ]
    for kind, r in v.get("recovery_by_kind", {}).items():
        lines.append(
            f"- {kind}: n={r.get('n')}, p50 {r.get('p50_s')} s, p99 {r.get('p99_s')} s, "
            f"max {r.get('max_s')} s"
        )
    lines += ["", "Contacts at risk per Redis rollback (state changed in the window):", ""]
    for item in figures.get("at_risk_per_rollback", []):
        lines.append(f"- {item['kind']}: {item['contacts']} contacts in {item['window_s']} s")
    lines += [
        "",
        "Violations by kind: "
        + (json.dumps(v["violations_by_kind"]) if v["violations_by_kind"] else "none"),
        "",
        "Operations (ok / fail / unknown):",
        "",
    ]
    for op, c in v["operations"].items():
        lines.append(f"- {op}: {c.get('ok', 0)} / {c.get('fail', 0)} / {c.get('unknown', 0)}")
    return "\n".join(lines) + "\n"
