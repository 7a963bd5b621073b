"""Random ids for contacts, customers, decisions and requests.

Cheap (a PRNG seeded once from the OS) rather than secret: an id grants nothing, access is
by API key and tenant. 64 random bits keep collisions out of reach for any one tenant's
lifetime, and the enqueue script refuses an id that exists anyway.
"""

from __future__ import annotations

import random
import secrets

_ids = random.Random(secrets.randbits(128))


def new_id() -> str:
    """16 hex digits."""
    return f"{_ids.getrandbits(64):016x}"
