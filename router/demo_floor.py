"""The demo's contact center: routing rules, a dozen agents, and the contacts of a
short, scripted morning (``omniroute demo``).

Waits in the relaxation steps are seconds rather than minutes so that they show within
the demo. One customer, Maria, calls about her router, the call ends unresolved with a
note, and she then writes on WhatsApp about the same problem.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from router.admin_specs import capacity_spec, requirement_spec, skill_spec, step_spec
from router.admin_specs import target_spec as target
from router.pb.omniroute.v1 import resources_pb2 as pb

#: The customer who switches channel, and the labels of her two contacts.
CROSS_CHANNEL_CUSTOMER = "maria"
CALL_LABEL = "c04"
FOLLOW_UP_LABEL = "c26"


def _rule(
    skills: str, steps: tuple[str, ...] = (), targets: tuple[str, ...] = (), text: str = ""
) -> pb.RoutingRule:
    return pb.RoutingRule(
        description=text,
        required_skills=[requirement_spec(s) for s in skills.split()],
        relaxation_steps=[step_spec(s) for s in steps],
        answer_targets=[target(t) for t in targets],
        service_level=0.8,
        require_language=True,
    )


#: Issue -> rule. ``default`` routes every issue without a rule of its own.
RULES: dict[str, pb.RoutingRule] = {
    "billing": _rule(
        "billing=3", ("5s:billing=2", "10s:billing=1"), ("voice=20s", "chat=45s"), "Invoices"
    ),
    "router_broken": _rule(
        "tech=3 routers=3", ("8s:routers=2",), ("voice=20s",), "Home router faults"
    ),
    "tech_support": _rule("tech=3", ("8s:tech=2",), (), "Other technical questions"),
    "sales": _rule("sales=3", ("6s:sales=2",), ("voice=15s",), "New plans and upgrades"),
    "cancellation": _rule(
        "cancellation=4", ("6s:cancellation=3",), ("voice=15s",), "Retention desk"
    ),
    "default": _rule("general=1", (), (), "Anything else"),
}


@dataclass(frozen=True, slots=True)
class DemoAgent:
    """One agent of the demo floor."""

    id: str
    name: str
    skills: str
    capacity: str

    def message(self) -> pb.Agent:
        """The agent as CreateAgent takes it."""
        return pb.Agent(
            display_name=self.name,
            kind=pb.AGENT_KIND_HUMAN,
            skills=[skill_spec(s) for s in self.skills.split()],
            capacities=[capacity_spec(c) for c in self.capacity.split()],
        )


AGENTS: tuple[DemoAgent, ...] = (
    DemoAgent("ana", "Ana", "billing=5 sales=2 lang.en=5 lang.es=4", "voice=1 chat=3 email=2"),
    DemoAgent("ben", "Ben", "billing=3 cancellation=4 lang.en=5", "voice=1 chat=2 email=2 sms=2"),
    DemoAgent("chen", "Chen", "tech=5 routers=5 lang.en=5", "voice=1 chat=2 whatsapp=2"),
    DemoAgent(
        "dana", "Dana", "tech=3 routers=3 lang.en=4 lang.de=5", "voice=1 chat=3 whatsapp=2 email=2"
    ),
    DemoAgent("eli", "Eli", "sales=5 lang.en=5 lang.fr=4", "voice=1 chat=3 social=2"),
    DemoAgent(
        "fatima", "Fatima", "billing=4 cancellation=5 lang.en=5 lang.fr=5", "voice=1 chat=2 email=2"
    ),
    DemoAgent("gus", "Gus", "tech=4 routers=2 lang.en=4 lang.es=5", "voice=1 whatsapp=2 sms=2"),
    DemoAgent("hana", "Hana", "sales=3 billing=2 lang.en=5", "chat=3 social=3 sms=2"),
    DemoAgent(
        "ivan", "Ivan", "general=3 billing=2 tech=2 lang.en=4", "voice=1 chat=2 email=2 social=2"
    ),
    DemoAgent(
        "jo", "Jo", "cancellation=3 sales=4 lang.en=5 lang.es=3", "voice=1 chat=2 whatsapp=1"
    ),
    DemoAgent(
        "kai", "Kai", "routers=4 tech=4 lang.en=3 lang.fr=3", "voice=1 chat=2 whatsapp=2 email=2"
    ),
    DemoAgent(
        "lea", "Lea", "general=4 billing=3 lang.en=5 lang.de=4", "chat=3 email=2 sms=2 social=2"
    ),
)

_IDENTITY_OF_CHANNEL: dict[str, pb.IdentityKind] = {
    "voice": pb.IDENTITY_KIND_PHONE,
    "sms": pb.IDENTITY_KIND_PHONE,
    "whatsapp": pb.IDENTITY_KIND_WHATSAPP,
    "email": pb.IDENTITY_KIND_EMAIL,
    "chat": pb.IDENTITY_KIND_CHAT,
    "social": pb.IDENTITY_KIND_SOCIAL,
}


@dataclass(frozen=True, slots=True)
class DemoContact:
    """One scripted contact and how the agent who gets it behaves.

    ``plan``: ``accept``; ``decline`` (the first agent offered declines); ``expire`` (the
    first agent offered lets the offer time out). ``after``: submit only once that
    contact is completed (the cross-channel follow-up).
    """

    label: str
    at_s: float
    channel: str
    issue: str
    customer: str
    language: str = "en"
    priority: int = 0
    plan: str = "accept"
    outcome: str = "resolved"
    note: str = ""
    after: str = ""
    handle_s: float = 1.5
    think_s: float = 0.2
    identities: tuple[tuple[pb.IdentityKind, str], ...] = field(default=())

    def message(self) -> pb.Contact:
        """The contact as SubmitContact takes it (labelled in its attributes)."""
        return pb.Contact(
            channel=f"CHANNEL_{self.channel.upper()}",
            issue=self.issue,
            priority=self.priority,
            language=self.language,
            identities=[pb.Identity(kind=k, value=v) for k, v in self.identities],
            attributes={"demo_label": self.label, "demo_customer": self.customer},
        )


MARIA_NOTE = (
    "Router drops Wi-Fi every ~10 min since the firmware 2.1 update. Power-cycled, no "
    "change. Asked her to try a factory reset tonight and write back with the result."
)

# at_s, channel, issue, customer, language, priority, plan; labelled c01, c02, ... in order.
_SCRIPT: tuple[tuple[float, str, str, str, str, int, str], ...] = (
    (0.0, "chat", "billing", "noah", "en", 0, "decline"),
    (0.2, "voice", "billing", "sofia", "es", 1, "accept"),
    (0.4, "email", "billing", "liam", "en", 0, "accept"),
    (0.6, "voice", "router_broken", CROSS_CHANNEL_CUSTOMER, "en", 2, "accept"),  # c04
    (0.8, "chat", "sales", "olivia", "en", 0, "accept"),
    # nobody speaks Spanish at cancellation>=4: waits for the 6 s relaxation step (jo, 3)
    (0.9, "chat", "cancellation", "pablo", "es", 1, "accept"),
    (1.0, "whatsapp", "tech_support", "mateo", "es", 0, "accept"),
    (1.2, "sms", "billing", "emma", "en", 0, "accept"),
    (1.4, "social", "sales", "chloe", "fr", 0, "accept"),
    (1.6, "chat", "cancellation", "james", "en", 5, "accept"),
    (1.8, "voice", "tech_support", "ava", "en", 1, "accept"),
    (2.0, "email", "router_broken", "lukas", "de", 0, "accept"),
    (2.2, "chat", "billing", "lea_m", "fr", 0, "accept"),
    (2.4, "whatsapp", "sales", "lucia", "es", 0, "accept"),
    (2.6, "chat", "password_reset", "ethan", "en", 0, "accept"),
    (2.8, "voice", "cancellation", "mia", "en", 4, "decline"),
    (3.0, "sms", "tech_support", "oscar", "en", 0, "accept"),
    (3.2, "chat", "sales", "zoe", "en", 0, "expire"),
    (3.4, "email", "cancellation", "hugo", "fr", 0, "accept"),
    (3.6, "social", "billing", "ella", "en", 0, "accept"),
    (3.8, "chat", "tech_support", "leo", "en", 0, "accept"),
    (4.0, "voice", "sales", "ivy", "en", 3, "accept"),
    (4.2, "chat", "billing", "max", "en", 0, "accept"),
    (4.4, "email", "general_inquiry", "nora", "en", 0, "accept"),
    (4.6, "chat", "router_broken", "finn", "en", 0, "decline"),
)


def _identity(channel: str, customer: str, index: int) -> tuple[pb.IdentityKind, str]:
    kind = _IDENTITY_OF_CHANNEL[channel]
    if kind in (pb.IDENTITY_KIND_PHONE, pb.IDENTITY_KIND_WHATSAPP):
        return kind, f"+1555{index:07d}"
    if kind == pb.IDENTITY_KIND_EMAIL:
        return kind, f"{customer}@example.com"
    return kind, f"{customer}-{channel}"


def contacts(seed: int) -> list[DemoContact]:
    """The scripted contacts; handle and reaction times drawn from `seed`."""
    rng = random.Random(seed)
    result = []
    for i, (at_s, channel, issue, customer, lang, priority, plan) in enumerate(_SCRIPT):
        label = f"c{i + 1:02d}"
        outcome = "resolved" if rng.random() < 0.85 else "transferred"
        note = ""
        if label == CALL_LABEL:
            outcome, note = "unresolved", MARIA_NOTE
        result.append(
            DemoContact(
                label, at_s, channel, issue, customer, lang, priority, plan, outcome, note,
                handle_s=round(rng.uniform(1.0, 3.5), 2),
                think_s=round(rng.uniform(0.05, 0.3), 2),
                identities=(_identity(channel, customer, i + 100),),
            )
        )  # fmt: skip
    maria_phone = _identity("voice", CROSS_CHANNEL_CUSTOMER, 103)[1]
    result.append(
        DemoContact(
            FOLLOW_UP_LABEL, 0.0, "whatsapp", "router_broken", CROSS_CHANNEL_CUSTOMER,
            priority=2, note="Factory reset fixed it; replaced firmware with 2.1.1.",
            after=CALL_LABEL, handle_s=1.5, think_s=0.2,
            identities=(
                (pb.IDENTITY_KIND_WHATSAPP, maria_phone),
                (pb.IDENTITY_KIND_PHONE, maria_phone),
            ),
        )
    )  # fmt: skip
    return result
