"""A small contact-center floor in tenant t1 for the browser tests and the screenshots:
rules with relaxation steps, ten agents in every state, contacts on several channels
(some handled, one abandoned, some waiting with nobody able to take them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router.auth import Role
from router.pb.omniroute.v1 import contact_service_pb2 as contact_pb
from router.pb.omniroute.v1 import resources_pb2 as pb

if TYPE_CHECKING:
    from tests.web.conftest import Floor

V, C, E = pb.CHANNEL_VOICE, pb.CHANNEL_CHAT, pb.CHANNEL_EMAIL
AVAILABLE, AWAY = pb.AGENT_STATE_AVAILABLE, pb.AGENT_STATE_AWAY

AGENTS = [
    (
        "ana",
        "Ana Silva",
        {"billing": 5, "sales": 3, "lang.en": 5},
        {V: 1, C: 3, E: 2},
        AVAILABLE,
        "",
    ),
    ("ben", "Ben Okafor", {"billing": 3, "router": 4}, {V: 1, C: 2}, AVAILABLE, ""),
    ("chloe", "Chloé Martin", {"router": 5, "lang.fr": 5}, {C: 3}, AVAILABLE, ""),
    ("dev", "Dev Patel", {"sales": 4, "billing": 2}, {V: 1}, AWAY, "lunch"),
    ("grace", "Grace Ito", {"sales": 5}, {V: 1, C: 3}, AVAILABLE, ""),
    ("hugo", "Hugo Brandt", {"billing": 2}, {E: 3}, AWAY, "training"),
    ("ines", "Inès Duarte", {"router": 4, "billing": 3}, {C: 3}, AVAILABLE, ""),
    ("farid", "Farid Haddad", {"router": 3}, {V: 1, C: 2}, None, ""),
    ("jon", "Jon Berg", {"sales": 2}, {V: 1}, None, ""),
]
#: Agents the tests change (kept apart so that the seeded floor stays as it is).
TEST_AGENTS = [
    ("eve", "Eve Novak", {"lang.de": 3}, {V: 1, C: 2, E: 1}, AVAILABLE, ""),
    ("kai", "Kai Lund", {"repairs": 4}, {V: 1}, AVAILABLE, ""),
    ("liv", "Liv Moreau", {"sales": 1}, {V: 1}, AWAY, "coaching"),
]


def seed(floor: Floor) -> None:
    """Rules, agents and contacts of t1; one agent in t2."""
    floor.create_rule("billing", {"billing": 3}, steps=[(30, {"billing": 2}), (90, {"billing": 1})])
    floor.create_rule("tech_support", {"router": 3}, steps=[(60, {"router": 2})])
    floor.create_rule("sales", {"sales": 2}, service_level=0.9)
    floor.create_rule("fraud", {"fraud": 3})
    floor.create_rule("repairs", {"repairs": 3})
    for agent_id, name, skills, caps, state, reason in AGENTS + TEST_AGENTS:
        floor.create_agent(agent_id, name, skills, caps, state=state, reason=reason)
    floor.create_agent("zed", "Zed Tenant-Two", {"billing": 5}, {V: 1}, tenant="t2")
    handled = [
        floor.submit("billing", V),
        floor.submit("billing", C),
        floor.submit("tech_support", C),
        floor.submit("tech_support", C),
        floor.submit("sales", V),
        floor.submit("sales", C),
    ]
    for contact in handled:
        floor.accept_when_offered(contact.name)
    abandoned = floor.submit("fraud", V)
    floor.contacts.CancelContact(
        contact_pb.CancelContactRequest(name=abandoned.name, reason="hung_up"),
        metadata=floor.md(Role.PLATFORM),
    )
    for issue, channel in [
        ("fraud", V),
        ("fraud", C),
        ("billing", E),
        ("tech_support", E),
        ("sales", V),
        ("sales", V),
    ]:
        floor.submit(issue, channel)
