"""Server interceptor: authenticate the API key, apply the tenant's rate limit, check the
role, bind the log context, time the call, and turn any unexpected exception into one
logged INTERNAL.

Health checking and reflection need no key and are never rate limited (probes and grpcurl
use them as they are). The rate limit comes before the role check, so that a flood of
refused calls cannot write an audit record each. A request whose bytes do not parse
(invalid UTF-8 in a string, a truncated field) is refused with INVALID_ARGUMENT once its key
is checked; left to gRPC it would end UNKNOWN.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from google.protobuf.message import DecodeError
from grpc import StatusCode

from queues.cluster import STORE_DOWN
from queues.state import RedisState
from router.auth import Authenticator, Principal, check_role
from router.errors import PermissionDenied, Unauthenticated
from router.ids import new_id
from router.principal import current_principal
from router.ratelimit import Denial, TenantLimiter

log = structlog.get_logger(__name__)

OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
PACKAGE = "/omniroute.v1."
if TYPE_CHECKING:  # grpc-stubs makes it generic; the runtime class is not subscriptable
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
Ctx = grpc.aio.ServicerContext[Any, Any]


def _secret(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, credential = value.partition(" ")
            return credential.strip() if scheme.lower() == "bearer" else None
        if key == "x-api-key" and isinstance(value, str):
            return value.strip()
    return None


class MalformedRequest:
    """What a request whose bytes do not parse becomes, so that the call is refused with
    INVALID_ARGUMENT after its key is checked instead of failing inside gRPC."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:  # invalid UTF-8 in a string, a truncated field, ...
            return MalformedRequest(str(exc))

    return parse


async def _refuse_malformed(request: Any, context: Ctx) -> None:
    if isinstance(request, MalformedRequest):
        log.warning("rpc_malformed", problem=request.problem)
        await context.abort(StatusCode.INVALID_ARGUMENT, f"request: {request.problem}")


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """API-key authentication and role check for every Omniroute RPC."""

    def __init__(
        self,
        authenticator: Authenticator,
        state: RedisState,
        limiter: TenantLimiter | None = None,
    ) -> None:
        self._auth = authenticator
        self._state = state
        self._limiter = limiter

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        method_path: str = details.method
        if handler is None or not method_path.startswith(PACKAGE):
            return handler
        method = method_path[len(PACKAGE) :]
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _admit(self, method: str, context: Ctx) -> Principal:
        try:
            principal = await self._auth.authenticate(_secret(context.invocation_metadata()))
            if self._limiter is not None:
                await self._limit(principal, method, context)
            check_role(principal, method)
        except Unauthenticated as exc:
            log.warning("rpc_unauthenticated", method=method)
            await context.abort(StatusCode.UNAUTHENTICATED, str(exc))
        except STORE_DOWN as exc:
            await context.abort(StatusCode.UNAVAILABLE, f"state store unavailable: {exc}")
        except PermissionDenied as exc:
            log.warning("rpc_denied", method=method, tenant=principal.tenant, role=principal.role)
            await self._state.append_audit(
                principal.tenant, principal.actor, f"denied:{method}", "", "", str(exc)
            )
            await context.abort(StatusCode.PERMISSION_DENIED, str(exc))
        return principal

    async def _limit(self, principal: Principal, method: str, context: Ctx) -> None:
        """Hold the call for its token, or refuse it (RESOURCE_EXHAUSTED, RetryInfo)."""
        assert self._limiter is not None
        verdict = await self._limiter.admit(
            principal.tenant, principal.actor, method, context.time_remaining()
        )
        if isinstance(verdict, Denial):
            await context.abort(
                StatusCode.RESOURCE_EXHAUSTED, verdict.message, trailing_metadata=verdict.trailers()
            )
        elif verdict > 0:
            await asyncio.sleep(verdict)

    def _bind(self, method: str, principal: Principal) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            tenant=principal.tenant,
            method=method,
            role=principal.role.value,
            request_id=new_id()[:12],
        )

    def _unary(self, behavior: Any, method: str) -> Any:
        async def wrapper(request: Any, context: Ctx) -> Any:
            principal = await self._admit(method, context)
            self._bind(method, principal)
            await _refuse_malformed(request, context)
            token = current_principal.set(principal)
            started = time.perf_counter()
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception:
                log.exception("rpc_failed")
                await context.abort(StatusCode.INTERNAL, "internal error (logged)")
            finally:
                current_principal.reset(token)
                log.debug("rpc_done", ms=round((time.perf_counter() - started) * 1000, 3))

        return wrapper

    def _stream(self, behavior: Any, method: str) -> Any:
        async def wrapper(request: Any, context: Ctx) -> Any:
            principal = await self._admit(method, context)
            self._bind(method, principal)
            await _refuse_malformed(request, context)
            token = current_principal.set(principal)
            try:
                async for item in behavior(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception:
                log.exception("rpc_failed")
                await context.abort(StatusCode.INTERNAL, "internal error (logged)")
            finally:
                # A cancelled stream is closed from another context (grpc's athrow), where
                # the token cannot be reset; that context is discarded anyway.
                with contextlib.suppress(ValueError):
                    current_principal.reset(token)

        return wrapper
