"""A deliberately broken replica for the chaos negative control: ``omniroute serve`` with
the fencing-token check removed from ``accept_offer.lua``, patched in memory before the
service loads its scripts. Production code has no hook for this; the harness runs it with
``--replica-module tests.chaos.broken_replica`` from the repository root.

Without the check, an agent who answers an expired offer late takes the contact even when
it has meanwhile been offered to somebody else, who then accepts it too: the checker must
report double assignments (P1).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import queues.scripts

TOKEN_CHECK = """if c[2] ~= agent or c[3] ~= token then
  return {-3, c[1]}
end
"""

_original = queues.scripts.read_lua


def broken_read_lua(name: str) -> str:
    """The shipped script, except accept_offer without its token check."""
    text = _original(name)
    if name == "accept_offer":
        if TOKEN_CHECK not in text:
            raise RuntimeError("accept_offer.lua changed: update the negative control's patch")
        text = text.replace(TOKEN_CHECK, "")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Patch, then run ``omniroute`` as usual."""
    queues.scripts.read_lua = broken_read_lua  # type: ignore[assignment]
    state = sys.modules.get("queues.state")
    if state is not None:
        state.read_lua = broken_read_lua  # type: ignore[attr-defined]
    from router.cli import main as omniroute

    return omniroute(argv)
