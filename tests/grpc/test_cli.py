"""The supervisor commands (`omniroute agents|skills|rules|queues|audit|keys`) against an
in-process service on a real Redis: output, JSON, exit codes and error lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from structlog.testing import capture_logs

from router.admin_cli import main
from router.admin_specs import read_rules_file
from router.auth import Role
from router.config import Settings
from router.domain import TenantId
from router.server import Service


@dataclass
class Cli:
    """Runs `main` in a thread (it blocks) against the service, with a key."""

    port: int
    key: str
    capsys: pytest.CaptureFixture[str]

    async def __call__(self, *args: str, key: str | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        argv = [*args, "--server", f"127.0.0.1:{self.port}", "--key", key or self.key]
        code = await asyncio.to_thread(main, argv)
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *args: str) -> Any:
        code, out, err = await self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
async def service(redis_url: str, aredis: redis.asyncio.Redis) -> AsyncIterator[Service]:
    with capture_logs():  # the service's logs would otherwise mix with the command's output
        svc = Service(Settings(port=0, dev_keys=False, grace_s=0.5), redis_url)
        await svc.start()
        try:
            yield svc
        finally:
            await svc.stop()


@pytest.fixture
async def cli(service: Service, capsys: pytest.CaptureFixture[str]) -> Cli:
    _, secret = await service.supervision.create_api_key(
        TenantId("t1"), Role.ADMIN, "", "test", "test"
    )
    return Cli(service.port, secret, capsys)


async def test_agent_lifecycle_prints_tables_and_json(cli: Cli) -> None:
    code, out, err = await cli(
        "agents", "create", "ana", "--name", "Ana", "--skill", "billing=4",
        "--skill", "lang.en=5", "--capacity", "voice=1", "--capacity", "chat=3",
    )  # fmt: skip
    assert code == 0, err
    assert "billing=4 lang.en=5" in out and "voice 0/1" in out
    await cli("agents", "create", "bot1", "--capacity", "chat=50", "--skill", "faq=3", "--bot")

    listed = await cli.json("agents", "list")
    assert [a["name"] for a in listed["agents"]] == [
        "tenants/t1/agents/ana",
        "tenants/t1/agents/bot1",
    ]
    assert listed["agents"][1]["kind"] == "AGENT_KIND_BOT"
    billing = await cli.json("agents", "list", "--skill", "billing")
    assert [a["displayName"] for a in billing["agents"]] == ["Ana"]
    code, out, _ = await cli("agents", "list", "--state", "signed_out")
    assert code == 0 and "ana" in out and "bot1" in out and "Agents (2)" in out

    updated = await cli.json("agents", "update", "ana", "--skill", "sales=2")
    assert updated["skills"] == [{"skill": "sales", "proficiency": 2}]
    assert updated["displayName"] == "Ana"  # not in the mask: unchanged
    code, out, _ = await cli("agents", "show", "ana")
    assert code == 0 and "sales=2" in out and "Agent ana" in out

    code, out, _ = await cli("agents", "delete", "bot1")
    assert (code, out.strip()) == (0, "deleted agent bot1")
    code, _, err = await cli("agents", "show", "bot1")
    assert code == 1
    assert err.startswith("omniroute agents: NOT_FOUND: ") and "bot1" in err


async def test_agent_state_away_with_reason_and_sign_out(cli: Cli) -> None:
    await cli("agents", "create", "ana", "--skill", "billing=4", "--capacity", "chat=2")
    code, out, err = await cli("agents", "state", "ana", "away", "--reason", "lunch")
    assert code == 0, err
    assert out.strip() == "agent ana: away (lunch)"
    code, out, err = await cli("agents", "state", "ana", "signed_out")
    assert (code, out.strip()) == (0, "agent ana: signed_out"), err


async def test_proficiency_out_of_range_is_invalid_argument_naming_the_field(cli: Cli) -> None:
    await cli("agents", "create", "ana", "--skill", "billing=4", "--capacity", "chat=2")
    code, out, err = await cli("skills", "set", "ana", "billing", "9")
    assert code == 1 and out == ""
    assert err.startswith("omniroute skills: INVALID_ARGUMENT: skill.proficiency: ")
    assert "Traceback" not in err
    code, _, err = await cli("agents", "create", "bo", "--skill", "x=9", "--capacity", "chat=1")
    assert code == 1
    assert "INVALID_ARGUMENT: agent.skills[0].proficiency" in err


async def test_skills_set_and_remove(cli: Cli) -> None:
    await cli("agents", "create", "ana", "--skill", "billing=4", "--capacity", "chat=2")
    code, out, err = await cli("skills", "set", "ana", "lang.es", "3")
    assert code == 0, err
    assert "billing=4 lang.es=3" in out
    code, out, _ = await cli("skills", "remove", "ana", "billing")
    assert code == 0 and "skills lang.es=3" in out
    code, _, err = await cli("skills", "remove", "ana", "billing")
    assert code == 1 and "omniroute skills: NOT_FOUND:" in err
    code, _, err = await cli("skills", "set", "nobody", "billing", "3")
    assert code == 1 and "NOT_FOUND" in err


async def test_usage_errors_exit_2(cli: Cli) -> None:
    code, _, err = await cli("agents", "create", "ana", "--skill", "billing", "--capacity", "x=1")
    assert code == 2 and "SKILL=LEVEL" in err
    code, _, err = await cli("skills", "set", "ana", "billing", "high")
    assert code == 2 and "invalid int value" in err
    code, _, err = await cli("agents", "update", "ana")
    assert code == 2 and "nothing to update" in err
    code, _, err = await cli("agents", "list", key="not-a-key")
    assert code == 2 and "not an Omniroute key" in err


async def test_rules_put_show_list_delete_from_flags(cli: Cli) -> None:
    code, _, err = await cli("rules", "put", "billing", "--skill", "billing=3")
    assert code == 1 and "INVALID_ARGUMENT: rule.skills['billing']: unknown skill" in err
    for skill in ("billing", "general", "sales"):
        code, out, err = await cli("skills", "define", skill, "--description", f"{skill} desk")
        assert code == 0, err
    code, out, err = await cli(
        "rules", "put", "billing", "--skill", "billing=3", "--step", "30s:billing=2",
        "--step", "90s:billing=1", "--sl", "0.9", "--target", "voice=15s",
        "--weights", "proficiency=2,idle=1,idle_horizon=300s", "--require-language",
    )  # fmt: skip
    assert code == 0, err
    assert "billing>=3" in out and "after 30.0s: billing>=2" in out
    rule = await cli.json("rules", "show", "billing")
    assert rule["serviceLevel"] == 0.9 and rule["requireLanguage"] is True
    assert rule["weights"]["proficiency"] == 2 and rule["weights"]["idleHorizon"] == "300s"
    assert [s["after"] for s in rule["relaxationSteps"]] == ["30s", "90s"]
    # put replaces the whole rule
    await cli("rules", "put", "billing", "--skill", "billing=2")
    rule = await cli.json("rules", "show", "billing")
    assert "relaxationSteps" not in rule and rule["requiredSkills"][0]["minProficiency"] == 2
    await cli("rules", "put", "default", "--skill", "general=1")
    listed = await cli.json("rules", "list")
    assert [r["name"].rsplit("/", 1)[1] for r in listed["routingRules"]] == ["billing", "default"]
    code, out, _ = await cli("rules", "delete", "billing")
    assert (code, out.strip()) == (0, "deleted routing rule billing")
    code, _, err = await cli("rules", "show", "billing")
    assert code == 1 and "omniroute rules: NOT_FOUND:" in err
    code, _, err = await cli("rules", "put", "sales", "--skill", "sales=7")
    assert code == 1
    assert "INVALID_ARGUMENT: routing_rule.required_skills[0].min_proficiency" in err


RULES_YAML = """\
rules:
  billing:
    description: Invoices and payments
    skills: {billing: 3}
    steps:
      - after: 30s
        skills: {billing: 2}
    targets: {voice: 20s, chat: 1m}
    require_language: true
  router_broken:
    skills: {tech: 3, routers: 2}
    service_level: 0.9
"""


async def test_rules_put_from_file(cli: Cli, tmp_path: Path) -> None:
    for skill in ("billing", "tech", "routers"):
        await cli("skills", "define", skill)
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML)
    code, out, err = await cli("rules", "put", "--file", str(path))
    assert code == 0, err
    assert "router_broken" in out and "routers>=2 tech>=3" in out
    rule = await cli.json("rules", "show", "billing")
    assert rule["description"] == "Invoices and payments"
    assert {t["channel"]: t["answerTarget"] for t in rule["answerTargets"]} == {
        "CHANNEL_VOICE": "20s",
        "CHANNEL_CHAT": "60s",
    }


async def test_bad_rules_file_names_line_and_field(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML.replace("{billing: 2}", "{billing: 9}"))
    code, out, err = await cli("rules", "put", "--file", str(path))
    assert code == 2 and out == ""
    assert f"{path}:7: rules.billing.steps[0].skills.billing: must be 0..5, got 9" in err
    path.write_text(RULES_YAML.replace("service_level", "service_levle"))
    code, _, err = await cli("rules", "put", "--file", str(path))
    assert code == 2 and f"{path}:12: rules.router_broken.service_levle: unknown field" in err
    path.write_text("rules:\n  billing: [unclosed\n")
    code, _, err = await cli("rules", "put", "--file", str(path))
    assert code == 2 and f"{path}:3:" in err
    listed = await cli.json("rules", "list")
    assert listed == {}  # nothing was written


async def test_queues_audit_and_keys(cli: Cli) -> None:
    await cli("rules", "put", "billing", "--skill", "billing=1")
    stats = await cli.json("queues")
    assert stats.get("waiting", "0") == "0"
    code, out, _ = await cli("queues")
    assert code == 0 and "Queue: 0 waiting" in out

    await cli("agents", "create", "ana", "--skill", "billing=4", "--capacity", "chat=2")
    await cli("skills", "set", "ana", "billing", "5")
    events = await cli.json("audit", "--target", "agents/ana")
    assert [e["action"] for e in events["auditEvents"]] == ["SetSkill", "CreateAgent"]
    code, out, _ = await cli("audit", "--limit", "1")
    assert code == 0 and "SetSkill" in out and "CreateAgent" not in out

    created = await cli.json("keys", "create", "--role", "supervisor", "--name", "night shift")
    secret, name = created["secret"], created["apiKey"]["name"]
    assert secret.startswith("omr_t1_")
    keys = await cli.json("keys", "list")
    assert name in [k["name"] for k in keys["apiKeys"]]
    code, _, err = await cli("keys", "list", key=secret)
    assert code == 1 and "omniroute keys: PERMISSION_DENIED:" in err
    code, out, _ = await cli("agents", "list", key=secret)
    assert code == 0 and "ana" in out
    code, out, _ = await cli("keys", "revoke", name.rsplit("/", 1)[1])
    assert code == 0 and out.startswith("revoked key tenants/t1/apiKeys/")
    await asyncio.sleep(1.1)  # the authentication cache holds a key for one second
    code, _, err = await cli("agents", "list", key=secret)
    assert code == 1 and "UNAUTHENTICATED" in err


async def test_key_file_picks_the_role(cli: Cli, tmp_path: Path) -> None:
    created = await cli.json("keys", "create", "--role", "planner")
    path = tmp_path / "dev-keys.json"
    path.write_text(json.dumps({"admin": cli.key, "planner": created["secret"]}))
    target = ["--server", f"127.0.0.1:{cli.port}", "--key-file", str(path)]
    cli.capsys.readouterr()
    assert await asyncio.to_thread(main, ["rules", "list", *target, "--role", "planner"]) == 0
    code = await asyncio.to_thread(main, ["agents", "create", "x", *target, "--role", "planner"])
    _, err = cli.capsys.readouterr()
    assert code == 1 and "omniroute agents: PERMISSION_DENIED:" in err
    code = await asyncio.to_thread(main, ["keys", "list", *target])  # admin by default for keys
    assert code == 0
    code = await asyncio.to_thread(main, ["rules", "list", *target])  # supervisor: not in file
    _, err = cli.capsys.readouterr()
    assert code == 2 and "has no 'supervisor' key" in err


def test_example_rules_file_parses() -> None:
    example = Path(__file__).parents[2] / "simulations/examples/routing_rules.yaml"
    rules = read_rules_file(example)
    assert [r.issue for r in rules] == ["billing", "router_broken", "cancellation", "default"]
    assert rules[1].rule.weights.idle_horizon.seconds == 600


async def test_skills_define_list_and_undefine(cli: Cli) -> None:
    code, out, err = await cli("skills", "define", "senior", "--description", "VIP desk")
    assert code == 0 and "senior" in out and "VIP desk" in out, err
    await cli("agents", "create", "ana", "--skill", "billing=4", "--capacity", "chat=2")
    await cli("rules", "put", "vip", "--skill", "billing=2", "--step", "2m:senior=1")
    listed = await cli.json("skills", "list")
    by_name = {s["name"].rsplit("/", 1)[1]: s for s in listed["routingSkills"]}
    assert by_name["senior"]["declared"] is True and by_name["senior"]["ruleCount"] == 1
    assert by_name["billing"]["agentCount"] == 1 and "declared" not in by_name["billing"]
    code, _, err = await cli("skills", "undefine", "senior")
    assert code == 1 and "FAILED_PRECONDITION" in err  # the rule vip needs it
    await cli("rules", "delete", "vip")
    code, out, _ = await cli("skills", "undefine", "senior")
    assert (code, out.strip()) == (0, "withdrew the declaration of skill senior")
    code, out, _ = await cli("skills", "list")
    assert code == 0 and "billing" in out and "senior" not in out


GROUPS_YAML = """\
rules:
  billing:
    skills: {billing: 3}
    agent_groups: [team]
    affinity_wait: 20s
    repeat_contacts: {window: 2h, priority_boost: 2, min_proficiency: 3}
    steps:
      - after: 1m
        add_agent_groups: [overflow]
      - after: 1m
        skills: {billing: 1}
        eligible_agents_at_most: 0
        service_level_below: 0.7
        expected_wait_over: 3m
"""


async def test_rules_file_groups_affinity_repeat_and_queue_state_steps(
    cli: Cli, tmp_path: Path
) -> None:
    await cli("skills", "define", "billing")
    path = tmp_path / "rules.yaml"
    path.write_text(GROUPS_YAML)
    code, out, err = await cli("rules", "put", "--file", str(path))
    assert code == 0, err
    assert "+group overflow" in out and "eligible agents <= 0" in out
    rule = await cli.json("rules", "show", "billing")
    assert rule["agentGroups"] == ["team"] and rule["affinityWait"] == "20s"
    assert rule["repeatContacts"] == {"window": "7200s", "priorityBoost": 2, "minProficiency": 3}
    first, second = rule["relaxationSteps"]
    assert first["addAgentGroups"] == ["overflow"] and "skills" not in first
    assert second["eligibleAgentsAtMost"] == 0 and second["serviceLevelBelow"] == 0.7
    assert second["expectedWaitOver"] == "180s"


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("[overflow]", "[Over Flow]", ":9: rules.billing.steps[0].add_agent_groups[0]: "),
        (
            "priority_boost: 2",
            "priority_boost: 12",
            ":6: rules.billing.repeat_contacts.priority_boost: must be 0..9",
        ),
        (
            "min_proficiency: 3}",
            "level: 3}",
            ":6: rules.billing.repeat_contacts.level: unknown field",
        ),
        (
            "eligible_agents_at_most: 0",
            "eligible_agents_at_most: few",
            ":12: rules.billing.steps[1].eligible_agents_at_most: 'few' is not a whole number",
        ),
        (
            "agent_groups: [team]",
            "agent_groups: {team: 1}",
            ":4: rules.billing.agent_groups: must be a single value",
        ),
    ],
)
async def test_bad_new_rules_file_fields_name_line_and_field(
    cli: Cli, tmp_path: Path, old: str, new: str, where: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GROUPS_YAML.replace(old, new))
    code, out, err = await cli("rules", "put", "--file", str(path))
    assert code == 2 and out == ""
    assert f"{path}{where}" in err
    assert await cli.json("rules", "list") == {}  # nothing was written
