"""Domain errors: plain Python, each with a message a caller can act on.

The gRPC edge maps them to status codes (see ``router.service``); the core raises them and
never catches broad exceptions.
"""

from __future__ import annotations


class RoutingError(Exception):
    """Base of every error Omniroute reports to a caller."""


class InvalidArgument(RoutingError):
    """A request field is malformed; the message starts with the field path."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(RoutingError):
    """The named resource does not exist (or belongs to another tenant: both look alike)."""


class AlreadyExists(RoutingError):
    """The resource to create exists already, or an idempotency key was reused differently."""


class Conflict(RoutingError):
    """The request is valid but the resource is not in a state that allows it."""


class Unauthenticated(RoutingError):
    """No API key, or one that is unknown, revoked or expired."""


class PermissionDenied(RoutingError):
    """The API key is valid but its tenant or role does not allow this call."""


class Unavailable(RoutingError):
    """The backing store cannot be reached; the call may be retried."""


class ResourceExhausted(RoutingError):
    """A rate limit or a size limit was hit."""
