"""The fuzzer's target: a replica on a small floor, keys for every role, valid seed requests,
and the check each generated call is held to (``tests/grpc/test_fuzz.py``).

The replica runs in a background thread's event loop so that the synchronous Hypothesis
test drives it with a plain gRPC channel. Nothing on its floor changes by itself (no offer
expires, no presence lapses, no timed routing pass), so any change of Redis after a call
is the call's doing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import redis
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from router.auth import PERMISSIONS, Role
from router.domain import TenantId
from router.pb.omniroute.v1 import agent_service_pb2 as agent_pb
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb
from router.pb.omniroute.v1 import supervisor_service_pb2 as sup_pb
from router.server import SERVICE_NAMES, Service
from tests.grpc.conftest import replica_settings
from tests.grpc.fuzz_calls import Case, Metadata
from tests.grpc.fuzz_seeds import agent_profile, seeds
from tests.grpc.value_strategies import Floor

T = TypeVar("T")
#: Every RPC of the API, "Service/Method", from the descriptors.
METHODS: dict[str, MethodDescriptor] = {
    f"{service.name}/{m.name}": m
    for service in map(descriptor_pool.Default().FindServiceByName, SERVICE_NAMES)
    for m in service.methods
}
#: A stream that opened is read for this long (its first message, or its status).
STREAM_DEADLINE_S = 0.25
#: A unary call must be answered within this.
UNARY_DEADLINE_S = 15.0
#: Role order when picking the strongest key an RPC admits.
STRENGTH = (Role.ADMIN, Role.SUPERVISOR, Role.PLATFORM, Role.PLANNER, Role.AGENT)
UNNAMED = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
#: The state digest: SHA-1 over every key but the audit streams (type, then value; hashes
#: and sets sorted, as ``tests.grpc.conftest.snapshot`` reads them), and each audit stream's
#: length and last id. Test use only: KEYS * is fine on the test server, and one round trip
#: keeps a digest per call affordable.
DIGEST = """
local parts, audits = {}, {}
local keys = redis.call('KEYS', '*')
table.sort(keys)
for _, key in ipairs(keys) do
  if string.find(key, ':audit', 1, true) then
    local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
    audits[#audits + 1] = key
    audits[#audits + 1] = redis.call('XLEN', key) .. ' ' .. (last[1] and last[1][1] or '-')
  else
    local kind = redis.call('TYPE', key)['ok']
    local value = {}
    if kind == 'string' then
      value = {redis.call('GET', key)}
    elseif kind == 'hash' then
      local flat = redis.call('HGETALL', key)
      for i = 1, #flat, 2 do
        value[#value + 1] = #flat[i] .. ':' .. flat[i] .. '=' .. flat[i + 1]
      end
      table.sort(value)
    elseif kind == 'set' then
      value = redis.call('SMEMBERS', key)
      table.sort(value)
    elseif kind == 'zset' then
      value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    elseif kind == 'list' then
      value = redis.call('LRANGE', key, 0, -1)
    elseif kind == 'stream' then
      for _, entry in ipairs(redis.call('XRANGE', key, '-', '+')) do
        value[#value + 1] = entry[1]
        for _, item in ipairs(entry[2]) do value[#value + 1] = item end
      end
    end
    parts[#parts + 1] = #key .. ':' .. key .. ' ' .. kind .. ' ' .. #value
    for _, item in ipairs(value) do parts[#parts + 1] = #item .. ':' .. item end
  end
end
return {redis.sha1hex(table.concat(parts, '\\n')), audits}
"""


@dataclass(frozen=True, slots=True)
class Digest:
    """Redis's write counter, everything but the audit streams, each audit stream's end."""

    writes: tuple[str, str]
    main: str
    audits: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended: its status, and whether it was a stream left open (accepted)."""

    code: grpc.StatusCode
    details: str = ""
    open_stream: bool = False

    @property
    def accepted(self) -> bool:
        return self.code is grpc.StatusCode.OK

    @property
    def name(self) -> str:
        return "OK (stream open)" if self.open_stream else self.code.name


class Replica:
    """A `Service` running in a background thread's event loop, for a synchronous client."""

    def __init__(self, redis_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="fuzz-replica", daemon=True
        )
        self._thread.start()
        quiet = replica_settings(  # no offer expires, no presence lapses, no timed pass
            offer_timeout_s=3600.0,
            presence_timeout_s=3600.0,
            tick_s=3600.0,
            sweep_s=3600.0,
            mirror_refresh_s=3600.0,
        )

        async def build() -> Service:
            return Service(quiet, redis_url)  # its gRPC server binds to this loop

        self.service = self.run(build())
        self.port = self.run(self.service.start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.run(self.service.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class Target:
    """A replica over an emptied Redis, a channel to it, keys, the floor, and the check."""

    def __init__(self, redis_url: str) -> None:
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.redis.flushall()
        self._digest = self.redis.register_script(DIGEST)
        self.replica = Replica(redis_url)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.replica.port}")
        self._callables: dict[str, Any] = {}
        try:
            self.keys = self._make_keys()
            self.floor, self.seeds = self._make_floor()
            self._last = self.digest()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.channel.close()
        self.replica.stop()
        self.redis.flushall()
        self.redis.close()

    def strongest(self, rpc: str) -> str:
        """The key of the strongest role `rpc` admits (admin, for every RPC so far)."""
        roles = PERMISSIONS.get(rpc, frozenset({Role.ADMIN}))
        return next(role.value for role in STRENGTH if role in roles)

    # --- the check ----------------------------------------------------------------------

    def writes(self) -> tuple[str, str]:
        """Redis's count of writes (since its last save, and when that was): the same
        count means nothing was written; another proves nothing (a write may rewrite a
        value as it was), so the digest decides."""
        info = self.redis.info("persistence")
        return str(info["rdb_changes_since_last_save"]), str(info["rdb_last_save_time"])

    def digest(self) -> Digest:
        writes = self.writes()
        main, audits = self._digest()
        return Digest(writes, main, tuple(audits))

    def _digest_unless_unwritten(self, before: Digest) -> Digest:
        return before if self.writes() == before.writes else self.digest()

    def _routing(self) -> tuple[int, bool]:
        """(routing passes begun, is one under way or due) over the replica's routers."""
        routers = list(self.replica.service.engine.routers.values())
        begun = sum(r.passes for r in routers)
        busy = any(
            r._wake.is_set() or (r._pass is not None and not r._pass.done()) for r in routers
        )
        return begun, busy

    def _settled(self, before: Digest, *, stream: bool) -> Digest:
        """The digest once an accepted call's effects are over: no routing pass under way
        or due, and neither a write nor a new pass for 15 ms (the call's notices reach the
        routers through Redis pub/sub, so a pass may begin a little after the answer)."""
        begun, busy = self._routing()
        if not stream and not busy and self.writes() == before.writes:
            return before  # it wrote nothing, so it woke nothing
        deadline = time.monotonic() + 5
        seen, quiet_since = (self.writes(), begun), time.monotonic()
        while busy or time.monotonic() - quiet_since < 0.015:
            assert time.monotonic() < deadline, "Redis kept changing for 5 s after a call"
            time.sleep(0.003)
            begun, busy = self._routing()
            now = (self.writes(), begun)
            if now != seen or busy:
                seen, quiet_since = now, time.monotonic()
        return self.digest()

    def _callable(self, rpc: str) -> Any:
        """The channel's callable for `rpc`, taking the request's bytes as they are."""
        if rpc not in self._callables:
            m = METHODS[rpc]
            path = f"/{m.containing_service.full_name}/{m.name}"
            output = message_factory.GetMessageClass(m.output_type).FromString
            make = self.channel.unary_stream if m.server_streaming else self.channel.unary_unary
            self._callables[rpc] = make(path, response_deserializer=output)
        return self._callables[rpc]

    def call(self, rpc: str, case: Case) -> Outcome:
        """Make the call; a stream is read for its first message or its status."""
        try:
            if METHODS[rpc].server_streaming:
                wait_s = case.stream_wait_s or STREAM_DEADLINE_S
                stream = self._callable(rpc)(case.wire, metadata=case.metadata, timeout=wait_s)
                try:
                    next(stream)
                except StopIteration:
                    pass
                finally:
                    stream.cancel()
            else:
                self._callable(rpc)(case.wire, metadata=case.metadata, timeout=UNARY_DEADLINE_S)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""  # type: ignore[attr-defined]
            if METHODS[rpc].server_streaming and code is grpc.StatusCode.DEADLINE_EXCEEDED:
                return Outcome(grpc.StatusCode.OK, "", open_stream=True)  # opened, quiet
            return Outcome(code, details)
        return Outcome(grpc.StatusCode.OK)

    def check(self, rpc: str, case: Case) -> Outcome:
        """Call; the answer must be a named status, and a refused call must leave Redis as
        it was (a PERMISSION_DENIED one may append ``denied:`` audit records only)."""
        before = self._last
        outcome = self.call(rpc, case)
        if outcome.accepted:
            self._last = self._settled(before, stream=METHODS[rpc].server_streaming)
            return outcome
        code, why = outcome.code, f"{rpc} refused with {outcome.code.name}: {outcome.details}"
        assert code not in UNNAMED, why
        assert code is not grpc.StatusCode.DEADLINE_EXCEEDED, f"{rpc}: no answer in time"
        after = self._digest_unless_unwritten(before)
        assert after.main == before.main, f"{why[:300]}\nbut it changed the state"
        if after.audits != before.audits:
            assert code is grpc.StatusCode.PERMISSION_DENIED, f"{why[:300]}\nbut it was audited"
            self._only_denials_since(before, rpc)
        self._last = after
        return outcome

    def _only_denials_since(self, before: Digest, rpc: str) -> None:
        ends = dict(zip(before.audits[::2], before.audits[1::2], strict=True))
        for key in self.redis.scan_iter("*:audit"):
            last = ends.get(key, "0 -").split(" ")[1]
            for _, entry in self.redis.xrange(key, "-" if last == "-" else f"({last}", "+"):
                action = entry.get("action", "")
                assert action == f"denied:{rpc}", f"{rpc} refused but audited {action!r}"

    # --- set-up -------------------------------------------------------------------------

    def _key(self, tenant: str, role: Role, agent: str = "") -> Metadata:
        supervision = self.replica.service.supervision
        _, secret = self.replica.run(
            supervision.create_api_key(TenantId(tenant), role, agent, "fuzz", "test")
        )
        return (("authorization", f"Bearer {secret}"),)

    def _make_keys(self) -> dict[str, Metadata]:
        keys = {role.value: self._key("t1", role) for role in Role}
        keys["bound agent"] = self._key("t1", Role.AGENT, "a1")
        keys["foreign admin"] = self._key("t2", Role.ADMIN)
        revoked = self._key("t1", Role.ADMIN)
        key_id = str(revoked[0][1]).split("_")[2]
        supervision = self.replica.service.supervision
        self.replica.run(supervision.revoke_api_key(TenantId("t1"), key_id, "test"))
        keys["revoked admin"] = revoked
        self.revoked_key = f"tenants/t1/apiKeys/{key_id}"
        return keys

    def admin(self, rpc: str, request: Message) -> Any:
        """Call `rpc` with the admin key (set-up; must succeed)."""
        m = METHODS[rpc]
        call = self.channel.unary_unary(
            f"/{m.containing_service.full_name}/{m.name}",
            request_serializer=lambda r: r.SerializeToString(),
            response_deserializer=message_factory.GetMessageClass(m.output_type).FromString,
        )
        return call(request, metadata=self.keys["admin"], timeout=UNARY_DEADLINE_S)

    def _make_floor(self) -> tuple[Floor, dict[str, list[Message]]]:
        """Rules billing and tech; agents a1, holding an offer of a billing chat, and a2; a
        tech chat nobody can take; two customers. Returns the floor and the seeds."""
        for skill in ("billing", "tech", "sales"):
            self.admin(
                "SupervisorService/CreateRoutingSkill",
                sup_pb.CreateRoutingSkillRequest(parent="tenants/t1", routing_skill_id=skill),
            )
        for issue, level in (("billing", 1), ("tech", 5)):
            rule = pb.RoutingRule(
                required_skills=[pb.SkillRequirement(skill=issue, min_proficiency=level)]
            )
            self.admin(
                "SupervisorService/CreateRoutingRule",
                sup_pb.CreateRoutingRuleRequest(
                    parent="tenants/t1", issue=issue, routing_rule=rule
                ),
            )
        for agent_id, level in (("a1", 3), ("a2", 2)):
            self.admin(
                "SupervisorService/CreateAgent",
                sup_pb.CreateAgentRequest(
                    parent="tenants/t1", agent_id=agent_id, agent=agent_profile(level)
                ),
            )
        billing, tech = (
            self.admin(
                "ContactService/SubmitContact",
                contact_pb.SubmitContactRequest(
                    parent="tenants/t1",
                    contact=pb.Contact(channel=pb.CHANNEL_CHAT, issue=issue, identities=[identity]),
                    request_id=f"r-{issue}",
                ),
            )
            for issue, identity in (
                ("billing", pb.Identity(kind=pb.IDENTITY_KIND_PHONE, value="+15550001")),
                ("tech", pb.Identity(kind=pb.IDENTITY_KIND_EMAIL, value="ann@example.com")),
            )
        )
        self.admin("AgentService/SignIn", agent_pb.SignInRequest(name="tenants/t1/agents/a1"))
        offered = self._offered(billing.name)
        names = (
            "tenants/t1",
            "tenants/t1/agents/a1",
            "tenants/t1/agents/a2",
            "tenants/t1/routingRules/billing",
            "tenants/t1/routingRules/tech",
            offered.name,
            self.revoked_key,
            billing.name,
            tech.name,
            billing.customer,
            tech.customer,
        )
        ids = tuple(sorted({n.rsplit("/", 1)[1] for n in names if n.count("/") >= 3}))
        floor = Floor(tenant="t1", foreign_tenant="t2", ids=ids, names=names)
        return floor, seeds(offered, billing, tech, self.revoked_key)

    def _offered(self, contact: str) -> pb.Contact:
        deadline = time.monotonic() + 10
        while True:  # the billing contact goes to a1
            got = self.admin(
                "ContactService/GetContact", contact_pb.GetContactRequest(name=contact)
            )
            if got.state == pb.CONTACT_STATE_OFFERED:
                return pb.Offer(name=f"{got.agent}/offers/{contact.rsplit('/', 1)[1]}")
            assert time.monotonic() < deadline, "the floor's contact was never offered"
            time.sleep(0.02)
