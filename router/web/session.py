"""Web sessions: an API key (role supervisor or admin) is exchanged once for a signed,
HttpOnly, SameSite=Strict cookie; the key itself never reaches a URL, a page or a cookie.

The cookie carries the tenant, the key id, the role and a session id, signed with a
secret kept in Redis (shared by every replica, kept across restarts). Each use re-checks
the key's record, so revoking the key ends its web sessions within a second. Writes must
also come from the same origin (``Origin`` or ``Sec-Fetch-Site``) and carry the
session's form token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from router.auth import Authenticator, KeyLookup, Role
from router.domain import TenantId
from router.errors import Unauthenticated

COOKIE = "omr_session"
MAX_AGE_S = 12 * 3600
#: Roles that may use the supervisor view.
ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class WebSession:
    """Who is looking: the key's tenant, id and role, and this session's id."""

    tenant: TenantId
    key_id: str
    role: Role
    session_id: str

    @property
    def actor(self) -> str:
        """The audit log's actor: the web session of the key."""
        return f"tenants/{self.tenant}/apiKeys/{self.key_id}/webSessions/{self.session_id}"


class LoginRefused(Exception):
    """The key is unknown, revoked, or of a role that may not use the view."""


class Sessions:
    """Issues and checks session cookies and form tokens."""

    def __init__(
        self, secret: str, keys: KeyLookup, authenticator: Authenticator, cache_s: float = 1.0
    ) -> None:
        self._secret = secret.encode()
        self._serializer = URLSafeTimedSerializer(secret, salt="omniroute-web-session")
        self._keys = keys
        self._auth = authenticator
        self._cache_s = cache_s
        self._checked: dict[tuple[str, str], float] = {}

    async def log_in(self, api_key: str) -> tuple[WebSession, str]:
        """A session and its cookie value for `api_key`, or LoginRefused."""
        try:
            principal = await self._auth.authenticate(api_key.strip())
        except Unauthenticated as exc:
            raise LoginRefused("unknown, revoked or expired API key") from exc
        if principal.role not in ROLES:
            raise LoginRefused(
                f"a {principal.role.value} key may not use the supervisor view "
                "(use a supervisor or admin key)"
            )
        session = WebSession(principal.tenant, principal.key_id, principal.role, _new_id())
        payload = {"t": session.tenant, "k": session.key_id, "r": session.role.value}
        value = self._serializer.dumps({**payload, "s": session.session_id})
        return session, value

    async def resolve(self, request: Request) -> WebSession | None:
        """The request's session, if its cookie is valid and its key still is."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=MAX_AGE_S)
            session = WebSession(TenantId(data["t"]), data["k"], Role(data["r"]), data["s"])
        except (BadSignature, KeyError, ValueError, TypeError):
            return None
        return session if await self._key_alive(session) else None

    async def _key_alive(self, session: WebSession) -> bool:
        now = time.monotonic()
        ident = (session.tenant, session.key_id)
        if now - self._checked.get(ident, -1e9) < self._cache_s:
            return True
        record = await self._keys.get_api_key(session.tenant, session.key_id)
        alive = (
            record is not None
            and not record.get("revoke_s")
            and not (record.get("expire_s") and record["expire_s"] <= time.time())
            and record.get("role") == session.role.value
            and session.role in ROLES
        )
        if alive:
            if len(self._checked) > 10_000:
                self._checked.clear()
            self._checked[ident] = now
        return alive

    def form_token(self, session: WebSession) -> str:
        """The token every form of this session carries."""
        return hmac.new(self._secret, session.actor.encode(), hashlib.sha256).hexdigest()

    def check_form_token(self, session: WebSession, token: str) -> bool:
        """Is `token` this session's form token?"""
        return hmac.compare_digest(self.form_token(session), token)


def same_origin(request: Request) -> bool:
    """Did the browser say the request comes from this very origin? Requests that say
    nothing (no ``Origin``, no ``Sec-Fetch-Site``) are refused too."""
    origin = request.headers.get("origin")
    if origin:
        host = request.headers.get("host", "")
        return origin == f"{request.url.scheme}://{host}"
    return request.headers.get("sec-fetch-site") == "same-origin"


def _new_id() -> str:
    return secrets.token_hex(6)
