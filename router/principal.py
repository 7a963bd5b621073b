"""The caller of the current RPC, set by the auth interceptor for the servicers."""

from __future__ import annotations

from contextvars import ContextVar

from router.auth import Principal

current_principal: ContextVar[Principal | None] = ContextVar("current_principal", default=None)
