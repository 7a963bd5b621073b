"""A pure in-memory model of the contact and agent API, for the model-based test
(``tests/grpc/test_model.py``).

It predicts what each call answers (``OK`` or a status code name) and how the state moves:
which contacts exist, each one's coarse state, offer holder and token, each agent's state,
skills, capacity and missed offers. Routing is the one thing it does not predict (which agent
gets which contact is the scoring's business): it *adopts* the offers it observes in Redis,
after checking each one was allowed (a queued contact, an available agent holding the rule's
skills with a free slot on the channel, a token above every earlier one), and it knows when
routing must go on: while some queued contact and some such agent remain.

`problems` compares a snapshot of Redis with the model and names every broken promise:
P1 one holder per contact, P2 no load past capacity and load equal to contacts in hand,
P3 every open contact in exactly one place. No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OPEN = ("queued", "offered", "assigned")
IN_HAND = ("offered", "assigned")
OK = "OK"
REFUSED = "FAILED_PRECONDITION"


@dataclass
class ModelAgent:
    """An agent as the model knows it."""

    skills: dict[str, int]
    capacity: dict[str, int]  # channel -> contacts at once (0: none)
    state: str = "signed_out"
    reason: str = ""
    missed: int = 0
    #: channel -> load the agent may keep above a capacity a supervisor lowered under it
    #: (no new offer until the load is below the capacity again).
    grace: dict[str, int] = field(default_factory=dict)


@dataclass
class ModelContact:
    """A contact as the model knows it."""

    cid: str
    issue: str
    channel: str
    priority: int
    status: str = "queued"
    agent: str = ""  # the last agent it was offered to ('' if never)
    token: int = 0  # the last offer's token
    released: int = 0  # the token of the last offer that ended without an accept


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One atomic read of the tenant's routing state in Redis."""

    contacts: Mapping[str, Mapping[str, str]]  # cid -> hash ({} if missing)
    agents: Mapping[str, Mapping[str, str]]  # aid -> hash
    loads: Mapping[str, Mapping[str, int]]  # aid -> channel -> load
    in_hand: Mapping[str, Mapping[str, int]]  # aid -> cid -> token
    available: frozenset[str]
    queue: frozenset[str]
    offers: frozenset[str]


class Model:
    """The API's expected behaviour; `rules` maps an issue to its required skills."""

    def __init__(self, rules: Mapping[str, Mapping[str, int]], max_missed: int) -> None:
        self.rules = {issue: dict(skills) for issue, skills in rules.items()}
        self.max_missed = max_missed
        self.agents: dict[str, ModelAgent] = {}
        self.contacts: dict[str, ModelContact] = {}
        #: request id -> (payload, contact id) of its first submit
        self.requests: dict[str, tuple[tuple[Any, ...], str]] = {}
        self.offers_adopted = 0

    # --- reading ------------------------------------------------------------------------

    def load(self, agent_id: str, channel: str) -> int:
        """Contacts of `channel` offered to or held by the agent."""
        return sum(
            1
            for c in self.contacts.values()
            if c.agent == agent_id and c.status in IN_HAND and c.channel == channel
        )

    def with_status(self, *statuses: str) -> list[str]:
        """Ids of contacts in any of `statuses`, sorted."""
        return sorted(cid for cid, c in self.contacts.items() if c.status in statuses)

    def why_not(self, agent_id: str, contact: ModelContact) -> str:
        """Why the agent may not be offered the contact now ('' if it may)."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return "unknown agent"
        if agent.state != "available":
            return f"agent is {agent.state}"
        required = self.rules.get(contact.issue, {})
        lacking = {s: lvl for s, lvl in required.items() if agent.skills.get(s, 0) < lvl}
        if lacking:
            return f"agent lacks {lacking} (has {agent.skills})"
        cap, load = agent.capacity.get(contact.channel, 0), self.load(agent_id, contact.channel)
        if load >= cap:
            return f"agent has {load} {contact.channel} contacts of capacity {cap}"
        return ""

    def routable(self) -> list[tuple[str, str]]:
        """(contact, agent) pairs routing must still act on: a queued contact and an
        agent allowed to take it."""
        return [
            (cid, aid)
            for cid in self.with_status("queued")
            for aid in sorted(self.agents)
            if not self.why_not(aid, self.contacts[cid])
        ]

    # --- contacts -----------------------------------------------------------------------

    def submit(self, rid: str, payload: tuple[Any, ...]) -> tuple[str, str]:
        """(expected answer, contact id it must name: '' for a new one) of a submit."""
        issue = payload[0]
        if issue not in self.rules:
            return REFUSED, ""
        if rid and rid in self.requests:
            first, cid = self.requests[rid]
            return (OK, cid) if first == payload else ("ALREADY_EXISTS", "")
        return OK, ""

    def submitted(self, rid: str, payload: tuple[Any, ...], cid: str) -> None:
        """A new contact `cid` was queued."""
        issue, channel, priority = payload
        self.contacts[cid] = ModelContact(cid, issue, channel, priority)
        if rid:
            self.requests[rid] = (payload, cid)

    def cancel(self, cid: str) -> str:
        """The platform cancels a contact."""
        c = self.contacts[cid]
        if c.status == "abandoned":
            return OK
        if c.status not in ("queued", "offered"):
            return REFUSED
        c.status = "abandoned"
        return OK

    # --- offers -------------------------------------------------------------------------

    def accept(self, cid: str, agent_id: str, token: int) -> str:
        c = self.contacts[cid]
        if (c.agent, c.token) != (agent_id, token) or c.status not in IN_HAND:
            return REFUSED
        if c.status == "offered":
            c.status = "assigned"
            self.agents[agent_id].missed = 0
        return OK

    def decline(self, cid: str, agent_id: str, token: int) -> str:
        c = self.contacts[cid]
        if (c.agent, c.token) != (agent_id, token):
            return REFUSED
        if c.status == "offered":
            self._release(c)
            return OK
        return OK if c.released == token else REFUSED  # the same decline again

    def complete(self, cid: str, agent_id: str, token: int) -> str:
        c = self.contacts[cid]
        if (c.agent, c.token) != (agent_id, token) or c.status not in ("assigned", "completed"):
            return REFUSED
        c.status = "completed"
        return OK

    def expire(self, cid: str) -> None:
        """The offer's deadline passed and the sweeper returned it."""
        c = self.contacts[cid]
        assert c.status == "offered", c
        agent = self.agents[c.agent]
        self._release(c)
        agent.missed += 1
        if agent.missed >= self.max_missed > 0 and agent.state == "available":
            agent.state, agent.reason = "away", "no_answer"

    def _release(self, c: ModelContact) -> None:
        c.status, c.released = "queued", c.token

    def _return_offers(self, agent_id: str) -> None:
        for c in self.contacts.values():
            if c.agent == agent_id and c.status == "offered":
                self._release(c)

    # --- agents -------------------------------------------------------------------------

    def set_state(self, agent_id: str, state: str, reason: str = "") -> str:
        """Sign-in or SetAgentState to available or away."""
        agent = self.agents[agent_id]
        if state == "available" and agent.state != "available":
            agent.missed = 0
        agent.state, agent.reason = state, reason if state == "away" else ""
        if state == "away":
            self._return_offers(agent_id)
        return OK

    def sign_out(self, agent_id: str) -> str:
        if any(c.agent == agent_id and c.status == "assigned" for c in self.contacts.values()):
            return REFUSED
        self._return_offers(agent_id)
        agent = self.agents[agent_id]
        agent.state, agent.reason = "signed_out", ""
        return OK

    def set_skill(self, agent_id: str, skill: str, level: int) -> str:
        """Set (level >= 1) or remove (level 0) a skill."""
        skills = self.agents[agent_id].skills
        if level == 0:
            if skill not in skills:
                return "NOT_FOUND"
            del skills[skill]
        else:
            skills[skill] = level
        return OK

    def set_capacity(self, agent_id: str, capacity: Mapping[str, int]) -> str:
        if not any(capacity.values()):
            return "INVALID_ARGUMENT"
        agent = self.agents[agent_id]
        agent.capacity = dict(capacity)
        for channel, cap in capacity.items():
            load = self.load(agent_id, channel)
            if load > cap:
                agent.grace[channel] = max(agent.grace.get(channel, 0), load)
        return OK

    # --- observing Redis ----------------------------------------------------------------

    def observe(self, snap: Snapshot) -> list[str]:
        """Adopt the offers routing made since the last look, if each was allowed; name
        every difference the model cannot explain."""
        problems = []
        for cid, c in sorted(self.contacts.items()):
            fields = snap.contacts.get(cid) or {}
            status = fields.get("status", "")
            agent, token = fields.get("agent", ""), int(fields.get("token") or 0)
            if c.status == "queued" and status == "offered":
                why = self.why_not(agent, c)
                if token <= c.token:
                    why = why or f"token {token} not above {c.token}"
                if why:
                    problems.append(f"P1/P2: contact {cid} offered to {agent}, not allowed: {why}")
                c.status, c.agent, c.token = "offered", agent, token
                self.offers_adopted += 1
                continue
            if status != c.status:
                problems.append(f"contact {cid} is {status or 'missing'}, model says {c.status}")
                continue
            if (token, agent) != (c.token, c.agent):
                problems.append(
                    f"contact {cid} ({status}) has agent {agent!r} token {token}, "
                    f"model says {c.agent!r} token {c.token}"
                )
        return problems

    def problems(self, snap: Snapshot) -> list[str]:
        """Every promise the snapshot breaks, and every difference from the model."""
        found = self._placement(snap)
        found += self._agents(snap)
        known = set(self.contacts)
        for name, members in (("queue", snap.queue), ("offers", snap.offers)):
            stray = sorted(members - known)
            if stray:
                found.append(f"P3: the {name} index holds contacts never submitted: {stray}")
        return found

    def _placement(self, snap: Snapshot) -> list[str]:
        found = []
        holders: dict[str, list[tuple[str, int]]] = {}
        for aid, held in snap.in_hand.items():
            for cid, token in held.items():
                holders.setdefault(cid, []).append((aid, token))
        for cid, c in sorted(self.contacts.items()):
            if not snap.contacts.get(cid):
                found.append(f"P3: contact {cid} ({c.status}) has no hash")
            where = [
                name
                for name, inside in (
                    ("queue", cid in snap.queue),
                    ("offers", cid in snap.offers),
                    ("an agent's hand", cid in holders),
                )
                if inside
            ]
            expected = {
                "queued": ["queue"],
                "offered": ["offers", "an agent's hand"],
                "assigned": ["an agent's hand"],
            }.get(c.status, [])
            if where != expected:
                found.append(f"P3: contact {cid} is {c.status} but in {where or 'no place'}")
            hands = holders.get(cid, [])
            if c.status in IN_HAND and hands != [(c.agent, c.token)]:
                found.append(
                    f"P1: contact {cid} {c.status} to {c.agent} (token {c.token}) is in the "
                    f"hands of {hands}"
                )
        return found

    def _agents(self, snap: Snapshot) -> list[str]:
        found = []
        for aid, agent in sorted(self.agents.items()):
            fields = snap.agents.get(aid) or {}
            seen = (
                fields.get("state"),
                fields.get("away_reason", ""),
                int(fields.get("missed") or 0),
                aid in snap.available,
                _levels(fields.get("skills")),
                _levels(fields.get("capacity")),
            )
            want = (
                agent.state,
                agent.reason,
                agent.missed,
                agent.state == "available",
                _nonzero(agent.skills),
                _nonzero(agent.capacity),
            )
            if seen != want:
                found.append(f"agent {aid} is {seen}, model says {want}")
            loads = snap.loads.get(aid, {})
            for channel in sorted(set(agent.capacity) | set(loads)):
                load, model_load = loads.get(channel, 0), self.load(aid, channel)
                hand = sum(
                    1
                    for cid in snap.in_hand.get(aid, {})
                    if (snap.contacts.get(cid) or {}).get("ch") == channel
                )
                cap = agent.capacity.get(channel, 0)
                allowed = max(cap, agent.grace.get(channel, 0))
                if not load == model_load == hand:
                    found.append(
                        f"P2: agent {aid} {channel} load {load}, contacts in hand {hand}, "
                        f"model {model_load}"
                    )
                if not 0 <= load <= allowed:
                    found.append(f"P2: agent {aid} {channel} load {load} past capacity {cap}")
                # A lowered capacity's grace shrinks with the load: no new offer fills it.
                if model_load > cap:
                    agent.grace[channel] = model_load
                else:
                    agent.grace.pop(channel, None)
        return found


def _levels(raw: str | None) -> dict[str, int]:
    return _nonzero(json.loads(raw) if raw else {})


def _nonzero(values: Mapping[str, int]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(values.items()) if int(v)}
