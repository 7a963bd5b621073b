"""The discrete-event loop: contacts arrive, wait, abandon, are served and come back.

Agents live in the core's `Floor` and every decision is the core's: `pick_agent` at an
arrival, at a relaxation threshold and when an agent frees a slot, with the rule the live
service uses (``Plan.rule`` is ``router.assign.rule_for``). The engine only chooses *when* to
ask, as the live routing pass does: after each pass no waiting contact has an eligible agent,
so an event can only open the contacts it touches --

* an arrival: only the new contact may have an eligible agent;
* a relaxation threshold: only that contact's requirements changed;
* a freed slot or an agent signing in: only that agent gained room. Within a waiting group
  (issue, channel, priority, language) the oldest contact is the most relaxed, so the head of
  each group is the only one to try; the best-ranked eligible head (``queue_rank``) goes to
  ``pick_agent``, exactly what ``assign`` would give it.

Bots: a contact whose rule sends it to a bot first (``Contact.bot_first``) goes at arrival to
the bot ``pick_bot`` names, or, when none can take it, to people like any other -- the live
pass (``router.policy.decide``). A waiting one is offered to bots again when a bot signs in or
its requirements relax. After its time with the bot (``Plan.bot_model``) it is resolved
(contained: it never meets a person) or escalated: it joins the people's queue with its
original arrival time and priority, so its wait for a person counts from its arrival.

Agent groups: each agent's plan group is its one agent group (``AgentSpec.agent``), so a
rule naming ``agent_groups`` and the steps widening it are the core's own checks. A widening
is a relaxation threshold like any other: only ever more agents fit the contact.

Queue-state steps (``RelaxationStep.expected_wait_over_s``, ``service_level_below``,
``eligible_at_most``) break that invariant: such a step comes into force when the service
level drops or the expected wait grows, at any event. For the issues whose rules have one
(and only for them: other plans run exactly as before), the engine keeps the live service's
counts (``simulations.queue_state``), hands every decision about their contacts the signals
``router.queue_signals.measure`` gives -- what the live pass attaches (``SignalSource``), measured
at the decision rather than every 2 s -- and after each event sweeps their waiting contacts
on channels with a free slot, in queue order, until none fits. Within a waiting group such a
contact's signals depend on the steps its wait has reached (the eligible count does), so the
sweep and a freed agent try the oldest contact of each such class (``WaitingRoom.classes``),
not only the head. Their arrivals join the queue first and are decided by the sweep, so that
older contacts whose step the arrival triggered come first, as in a live pass.

Events are a heap of (time, seq, kind, payload); first contacts come from a presorted list.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from router.assign import Decision, Floor, pick_agent, pick_bot, queue_rank
from router.domain import (
    Agent,
    AgentId,
    AgentKind,
    AgentState,
    Channel,
    Contact,
    ContactId,
    CustomerId,
)
from router.rules import Rule
from simulations.models import Exponential, poisson_arrivals
from simulations.plan import History, Plan
from simulations.runlog import ABANDONED, UNANSWERED, RunLog
from simulations.waiting import Job, WaitingRoom

if TYPE_CHECKING:
    from simulations.queue_state import QueueState

DEPART, ABANDON, RELAX, ON, OFF, RETURN, BOT_DONE, BOT_ON, BOT_OFF, DAY = range(10)
#: A progress callback receives the fraction of simulated time done.
Progress = Callable[[float], None]


class Engine:
    """One run of a plan with one seed. Build, then `run()` once."""

    def __init__(self, plan: Plan, seed: int = 0, progress: Progress | None = None) -> None:
        self.plan = plan
        self.seed = seed
        self._progress = progress
        self._journey_rng = random.Random(f"{seed}:journeys")
        #: Bot time and outcome of repeat contacts (first contacts: ``_draw_bots``).
        self._bot_rng = random.Random(f"{seed}:bots:repeats")
        self.log = RunLog.empty(plan)
        self._rules: dict[str, Rule] = {issue: plan.rule(issue) for issue in self.log.issues}
        self._bot_models = {issue: plan.bot_model(issue) for issue in self.log.issues}
        self._issue_index = {issue: i for i, issue in enumerate(self.log.issues)}
        self._channel_index = {ch: i for i, ch in enumerate(self.log.channels)}
        self._events: list[tuple[float, int, int, object]] = []
        self._seq = 0
        self.floor = Floor()
        self._specs = {spec.id: spec for spec in plan.agents}
        self._group_index = {g: i for i, g in enumerate(self.log.groups)}
        self._in_hand: dict[AgentId, int] = {}
        self._busy_since: dict[AgentId, float] = {}
        self._free: dict[Channel, int] = dict.fromkeys(Channel, 0)
        self._room = WaitingRoom(self.log, plan.interval_s)
        self._history: dict[CustomerId, list[tuple[Channel, str, AgentId]]] = {}
        self._next_id = 0
        for spec in plan.agents:
            self.floor.put(spec.agent())
            self._in_hand[spec.id] = 0
            for start, end in spec.on_duty:
                self._push(start, ON, spec.id)
                if end < math.inf:  # on duty for good: no event that would end the run at inf
                    self._push(end, OFF, spec.id)
        self._add_bots()
        #: Counts for queue signals, when some rule has a queue-state step (else None), and
        #: per such issue the distinct waiting times of its steps, descending.
        self._qs: QueueState | None = None
        self._cuts: dict[str, tuple[float, ...]] = {}
        if any(s.on_queue_state for rule in self._rules.values() for s in rule.steps):
            # imported only for such plans: the others never pay for it
            from simulations.queue_state import QueueState

            self._qs = QueueState(self._rules)
            for issue in self._qs.issues:
                afters = {s.after_s for s in self._rules[issue].steps if s.after_s > 0}
                self._cuts[issue] = tuple(sorted(afters, reverse=True))
            day = 86_400.0
            while day < plan.horizon_s:  # today's counters start again: signals change
                self._push(day, DAY, None)
                day += 86_400.0

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> RunLog:
        """Simulate to the end (arrivals stop at the horizon; waiting contacts drain)."""
        arrivals = self._first_contacts()
        events = self._events
        pop = heapq.heappop
        n, i = len(arrivals), 0
        horizon = self.plan.horizon_s
        next_report = horizon / 100.0
        now = 0.0
        qs = self._qs
        while i < n or events:
            if i < n and (not events or arrivals[i][0] <= events[0][0]):
                now, job = arrivals[i]
                i += 1
                self._arrive(job, now)
            else:
                now, _, kind, payload = pop(events)
                if kind == DEPART:
                    self._depart(payload, now)  # type: ignore[arg-type]
                elif kind == ABANDON:
                    self._abandon(payload, now)  # type: ignore[arg-type]
                elif kind == RELAX:
                    self._relax(payload, now)  # type: ignore[arg-type]
                elif kind == ON:
                    self._sign_in(payload, now)  # type: ignore[arg-type]
                elif kind == OFF:
                    self._sign_out(payload, now)  # type: ignore[arg-type]
                elif kind == BOT_DONE:
                    self._bot_done(payload, now)  # type: ignore[arg-type]
                elif kind == BOT_ON:
                    self._bot_sign_in(payload, now)  # type: ignore[arg-type]
                elif kind == BOT_OFF:
                    self._bot_sign_out(payload, now)  # type: ignore[arg-type]
                elif kind != DAY:
                    self._arrive(payload, now)  # type: ignore[arg-type]
            if qs is not None:
                self._sweep(qs, now)
            if self._progress is not None and now >= next_report:
                self._progress(min(1.0, now / horizon))
                next_report = now + horizon / 100.0
        self.log.end_s = max(horizon, now)
        self._room.close(self.log.end_s)
        for job in self._room.all_waiting():
            self._finish(job, UNANSWERED, self.log.end_s - job.contact.arrived_at)
        self._close_busy()
        return self.log

    def _push(self, t: float, kind: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, payload))

    # -- contacts -----------------------------------------------------------------------

    def _first_contacts(self) -> list[tuple[float, Job]]:
        """All first contacts, sorted; handle times and patience drawn per stream so that
        two variants of a plan see the same customers (common random numbers)."""
        plan = self.plan
        items: list[tuple[float, int, str, Channel, int, str, CustomerId | None, float, float]]
        items = []
        for k, stream in enumerate(plan.streams):
            rng = random.Random(f"{self.seed}:stream:{k}")
            times = poisson_arrivals(stream, plan.horizon_s, rng)
            draw_h, draw_p = stream.handle.sample, stream.patience.sample
            for t in times:
                items.append(
                    (
                        t,
                        k,
                        stream.issue,
                        stream.channel,
                        stream.priority,
                        stream.language,
                        None,
                        draw_h(rng),
                        draw_p(rng),
                    )
                )
        rng = random.Random(f"{self.seed}:replay")
        fallback = Exponential(300.0)
        for k, rc in enumerate(plan.replay):
            handle_s = rc.handle_s
            if handle_s is None:
                handle_s = plan.issue_handle.get(rc.issue, fallback).sample(rng)
            patience_s = rc.patience_s
            if rc.extra_patience_rate > 0:
                patience_s += rng.expovariate(rc.extra_patience_rate)
            items.append(
                (
                    rc.arrived_at,
                    len(plan.streams) + k,
                    rc.issue,
                    rc.channel,
                    rc.priority,
                    "",
                    rc.customer_id,
                    handle_s,
                    patience_s,
                )
            )
        items.sort(key=lambda item: (item[0], item[1]))
        out: list[tuple[float, Job]] = []
        for t, _, issue, channel, priority, language, customer, handle_s, patience_s in items:
            contact = self._contact(t, issue, channel, priority, language, customer)
            out.append((t, Job(contact, handle_s, patience_s, 0, channel)))
        self._draw_bots(out)
        return out

    def _draw_bots(self, arrivals: list[tuple[float, Job]]) -> None:
        """Bot time and outcome of every bot-first first contact, in arrival order from a
        stream of their own: the people's draws stay those of the plan without bots, and two
        containment shares see the same customers (common random numbers)."""
        rng = random.Random(f"{self.seed}:bots")
        for _, job in arrivals:
            if job.contact.bot_first:
                self._draw_bot(job, rng)

    def _draw_bot(self, job: Job, rng: random.Random) -> None:
        model = self._bot_models[job.contact.issue]
        if model is not None:
            job.bot_s = model.handle.sample(rng)
            job.contained = rng.random() < model.containment

    def _contact(
        self,
        t: float,
        issue: str,
        channel: Channel,
        priority: int,
        language: str,
        customer: CustomerId | None,
    ) -> Contact:
        self._next_id += 1
        contact_id = ContactId(f"c{self._next_id:09d}")
        if customer is None:
            customer = CustomerId(contact_id)
        last, known = self._visible_agents(customer, channel, issue)
        return Contact(
            id=contact_id,
            channel=channel,
            issue=issue,
            arrived_at=t,
            priority=priority,
            language=language,
            customer_id=customer,
            last_agent_id=last,
            known_agent_ids=known,
            bot_first=self._rules[issue].bot_first,
        )

    def _visible_agents(
        self, customer: CustomerId, channel: Channel, issue: str
    ) -> tuple[AgentId | None, tuple[AgentId, ...]]:
        """What routing may know from the history: last agent on this issue, and all agents
        who served the customer, most recent first -- as far as the history is visible."""
        entries = self._history.get(customer)
        if not entries or self.plan.history is History.NONE:
            return None, ()
        if self.plan.history is History.PER_CHANNEL:
            entries = [e for e in entries if e[0] == channel]
        last = next((a for ch, iss, a in reversed(entries) if iss == issue), None)
        known = tuple(dict.fromkeys(a for _, _, a in reversed(entries)))
        return last, known

    def _arrive(self, job: Job, now: float) -> None:
        contact = job.contact
        job.index = self.log.add_contact(
            now,
            self._issue_index[contact.issue],
            self._channel_index[contact.channel],
            job.journey_step > 0,
            job.first_channel != contact.channel,
        )
        rule = self._rules[contact.issue]
        if self._qs is not None and contact.issue in self._qs.issues:
            self._wait(job, rule, now)  # decided by the sweep, in queue order
            if contact.bot_first:
                self._try_bot(job, now)
            return
        if contact.bot_first:
            to_bot = pick_bot(contact, self.floor, rule, now)
            if to_bot is not None:
                self._to_bot(job, to_bot, now)
                return
        self._to_people(job, rule, now)

    def _to_people(self, job: Job, rule: Rule, now: float) -> None:
        """An arrival, or a contact a bot escalated: an agent now, else the queue. Patience
        runs from `now`; relaxation from the contact's arrival (as it does live)."""
        contact = job.contact
        if self._qs is not None and contact.issue in self._qs.issues:
            self._wait(job, rule, now)  # decided by the sweep, in queue order
            return
        if self._free[contact.channel] > 0:
            decision = pick_agent(contact, self.floor, rule, now)
            if decision is not None:
                self._start(job, decision, now)
                return
        self._wait(job, rule, now)

    def _wait(self, job: Job, rule: Rule, now: float) -> None:
        """`job` joins the queue at `now`: its patience runs, its thresholds are due."""
        contact = job.contact
        self._room.enter(job, rule, now)
        if self._qs is not None and contact.issue in self._qs.issues:
            self._qs.entered(contact)
        if job.patience_s < math.inf:
            job.abandon_at = now + job.patience_s
            self._push(job.abandon_at, ABANDON, job)
        waited_s = now - contact.arrived_at
        for step in rule.steps:
            if waited_s <= step.after_s < waited_s + job.patience_s:
                self._push(contact.arrived_at + step.after_s, RELAX, job)

    def _relax(self, job: Job, now: float) -> None:
        """A waiting contact crossed a relaxation threshold: it may now fit an agent. Other
        contacts crossing one at the same instant are decided together, in queue order."""
        batch = [job]
        while self._events and self._events[0][0] == now and self._events[0][2] == RELAX:
            batch.append(heapq.heappop(self._events)[3])  # type: ignore[arg-type]
        batch = [j for j in batch if j.waiting]
        batch.sort(key=lambda j: queue_rank(j.contact, self._rules[j.contact.issue]))
        for waiting in batch:
            if not waiting.waiting:  # placed earlier in this batch (a stale duplicate event)
                continue
            if waiting.contact.bot_first and self._try_bot(waiting, now):
                continue
            if self._free[waiting.contact.channel] > 0:
                decision = self._pick(waiting, self._rules[waiting.contact.issue], now)
                if decision is not None:
                    self._leave(waiting, now)
                    self._start(waiting, decision, now)

    def _pick(self, job: Job, rule: Rule, now: float) -> Decision | None:
        """``pick_agent`` for a waiting contact, with its queue signals when its rule
        reads them."""
        contact = job.contact
        qs = self._qs
        if qs is not None and contact.issue in qs.issues:
            contact = qs.with_signals(contact, rule, self.floor, now)
        return pick_agent(contact, self.floor, rule, now)

    def _leave(self, job: Job, now: float) -> None:
        """`job` stops waiting (answered, abandoned, or taken by a bot)."""
        self._room.leave(job, now)
        if self._qs is not None and job.contact.issue in self._qs.issues:
            self._qs.left(job.contact)

    def _sweep(self, qs: QueueState, now: float) -> None:
        """After an event: queue signals may have changed, so a waiting contact of a rule
        with queue-state steps may fit an agent with a free slot now. Try, in queue order,
        the representative contacts (``WaitingRoom.classes``) of such rules on channels
        with a free slot; after a placement, again (signals moved), until none fits."""
        free, rules, room = self._free, self._rules, self._room
        while True:
            channels = [ch for ch, n in qs.waiting_on.items() if n and free[ch] > 0]
            if not channels:
                return
            jobs = [
                (queue_rank(job.contact, rules[job.contact.issue]), job)
                for ch in channels
                for job in room.classes(ch, self._cuts, now)
                if job.contact.issue in qs.issues
            ]
            jobs.sort(key=lambda entry: entry[0])
            for _, job in jobs:
                rule = rules[job.contact.issue]
                if job.contact.bot_first and self._try_bot(job, now):
                    break
                decision = self._pick(job, rule, now)
                if decision is not None:
                    self._leave(job, now)
                    self._start(job, decision, now)
                    break
            else:
                return

    def _abandon(self, job: Job, now: float) -> None:
        if not job.waiting or now != job.abandon_at:  # served, or an earlier wait's patience
            return
        self._leave(job, now)
        if self._qs is not None and job.contact.issue in self._qs.issues:
            self._qs.abandoned(job.contact, now)
        self._finish(job, ABANDONED, now - job.contact.arrived_at)
        journeys = self.plan.journeys
        if journeys.abandon_retry > 0 and self._journey_rng.random() < journeys.abandon_retry:
            self._come_back(job, now)

    def _start(self, job: Job, decision: Decision, now: float) -> None:
        """Give `job` to the decided agent: the simulator's commit of a routing decision."""
        agent_id, channel = decision.agent.id, job.contact.channel
        job.agent_id = agent_id
        self.log.answer(
            job.index, now - job.contact.arrived_at, self._group_index[self._specs[agent_id].group]
        )
        self.floor.reserve(agent_id, channel, now)
        qs = self._qs
        if qs is not None:
            qs.changed()
            if job.contact.issue in qs.issues:
                target = self._rules[job.contact.issue].target_s(channel)
                qs.answered(job.contact, now - job.since, target, now)
        in_hand = self._in_hand[agent_id] + 1
        self._in_hand[agent_id] = in_hand
        if in_hand == 1:
            self._busy_since[agent_id] = now
        if self._specs[agent_id].exclusive_channels:
            self._refresh(decision.agent, agent_id)
        elif decision.agent.is_available:
            self._free[channel] -= 1  # what _refresh would count, without recounting
        self._push(now + job.handle_s, DEPART, job)

    def _depart(self, job: Job, now: float) -> None:
        agent_id = job.agent_id
        assert agent_id is not None
        contact = job.contact
        before = self.floor.get(agent_id)
        assert before is not None
        self.floor.release(agent_id, contact.channel)
        qs = self._qs
        if qs is not None:
            qs.changed()
            if contact.issue in qs.issues:
                qs.handled(contact, job.handle_s, now)
        in_hand = self._in_hand[agent_id] - 1
        self._in_hand[agent_id] = in_hand
        if in_hand == 0:
            self._add_busy(agent_id, self._busy_since.pop(agent_id), now)
        if self._specs[agent_id].exclusive_channels:
            self._refresh(before, agent_id)
        elif before.is_available:
            self._free[contact.channel] += 1
        self._resolve(job, before, now)
        self._offer(agent_id, now)

    def _resolve(self, job: Job, agent: Agent, now: float) -> None:
        """Did the contact solve the customer's problem? If not, the customer comes back."""
        contact = job.contact
        customer = contact.customer_id
        assert customer is not None
        entries = self._history.setdefault(customer, [])
        journeys = self.plan.journeys
        resolved = True
        if journeys.enabled:
            history = self.plan.history
            sees = bool(entries) and (
                history is History.SHARED
                or (
                    history is History.PER_CHANNEL and any(e[0] == contact.channel for e in entries)
                )
            )
            rule = self._rules[contact.issue]
            level = max((agent.skills.get(s, 0) for s in rule.skills), default=3)
            chance = journeys.base + journeys.per_level * (level - 3)
            chance += journeys.with_history if sees else 0.0
            chance += journeys.same_agent if contact.last_agent_id == agent.id else 0.0
            resolved = self._journey_rng.random() < chance
        entries.append((contact.channel, contact.issue, agent.id))
        self.log.resolved[job.index] = int(resolved)
        if not resolved:
            self._come_back(job, now)

    def _come_back(self, job: Job, now: float) -> None:
        journeys, rng = self.plan.journeys, self._journey_rng
        if job.journey_step + 1 >= journeys.max_contacts:
            return
        t = now + journeys.return_delay.sample(rng)
        channel = job.contact.channel
        if journeys.switch_to and rng.random() < journeys.switch_channel:
            options = [(ch, w) for ch, w in journeys.switch_to.items() if ch != channel]
            if options:
                channel = rng.choices([o[0] for o in options], [o[1] for o in options])[0]
        if t >= self.plan.horizon_s:
            self.log.returns_after_horizon += 1
            return
        old = job.contact
        handle, patience = self.plan.handle_patience(old.issue, channel)
        contact = self._contact(t, old.issue, channel, old.priority, old.language, old.customer_id)
        comeback = Job(
            contact,
            handle.sample(rng),
            patience.sample(rng),
            job.journey_step + 1,
            job.first_channel,
        )
        if contact.bot_first:
            self._draw_bot(comeback, self._bot_rng)
        self._push(t, RETURN, comeback)

    def _finish(self, job: Job, outcome: int, wait_s: float) -> None:
        self.log.outcome[job.index] = outcome
        self.log.wait_s[job.index] = wait_s

    # -- bots ---------------------------------------------------------------------------

    def _add_bots(self) -> None:
        """Bots on the floor (signed out until their first period on duty). They are no
        staff: no slot counts, no busy time, no group in the figures; and, as live,
        ``pick_bot`` ignores agent groups (a bot serves the whole tenant)."""
        for spec in self.plan.bots:
            self.floor.put(replace(spec.agent(), kind=AgentKind.BOT))
            for start, end in spec.on_duty:
                self._push(start, BOT_ON, spec.id)
                if end < math.inf:
                    self._push(end, BOT_OFF, spec.id)

    def _to_bot(self, job: Job, decision: Decision, now: float) -> None:
        """Give `job` to the bot ``pick_bot`` chose, for the bot's time."""
        job.agent_id = decision.agent.id
        self.floor.reserve(decision.agent.id, job.contact.channel, now)
        self._push(now + job.bot_s, BOT_DONE, job)

    def _try_bot(self, job: Job, now: float) -> bool:
        """A waiting bot-first contact to a bot, if one can take it now."""
        contact, rule = job.contact, self._rules[job.contact.issue]
        if self._qs is not None and contact.issue in self._qs.issues:
            contact = self._qs.with_signals(contact, rule, self.floor, now)
        decision = pick_bot(contact, self.floor, rule, now)
        if decision is None:
            return False
        self._leave(job, now)
        self._to_bot(job, decision, now)
        return True

    def _bot_done(self, job: Job, now: float) -> None:
        """The bot resolved the contact, or escalated it: to people, as no bot's again
        (``escalate.lua`` clears the flag), keeping its arrival time and priority."""
        bot_id = job.agent_id
        assert bot_id is not None
        self.floor.release(bot_id, job.contact.channel)
        job.agent_id = None
        self.log.bot_done(job.index, job.bot_s, job.contained)
        if job.contained:
            return
        job.contact = replace(job.contact, bot_first=False)
        job.since = now  # the people's service level counts from here (escalate.lua)
        self._to_people(job, self._rules[job.contact.issue], now)

    def _bot_sign_in(self, bot_id: AgentId, now: float) -> None:
        """A bot came on duty: it may take the bot-first contacts waiting for people."""
        bot = self.floor.get(bot_id)
        assert bot is not None
        if bot.state is AgentState.AVAILABLE:
            return
        self.floor.put(replace(bot, state=AgentState.AVAILABLE, idle_since=now))
        waiting = [j for j in self._room.all_waiting() if j.contact.bot_first]
        waiting.sort(key=lambda j: queue_rank(j.contact, self._rules[j.contact.issue]))
        for job in waiting:
            self._try_bot(job, now)

    def _bot_sign_out(self, bot_id: AgentId, now: float) -> None:
        """A bot went off duty: it finishes the contacts it holds, takes no new one."""
        bot = self.floor.get(bot_id)
        assert bot is not None
        self.floor.put(replace(bot, state=AgentState.AWAY))

    # -- agents -------------------------------------------------------------------------

    def _sign_in(self, agent_id: AgentId, now: float) -> None:
        agent = self.floor.get(agent_id)
        assert agent is not None
        if agent.state is AgentState.AVAILABLE:
            return
        self.floor.put(replace(agent, state=AgentState.AVAILABLE, idle_since=now))
        if self._qs is not None:
            self._qs.changed()
        self._refresh(agent, agent_id)
        self._offer(agent_id, now)

    def _sign_out(self, agent_id: AgentId, now: float) -> None:
        """End of a period on duty: contacts in hand are finished, no new ones taken."""
        agent = self.floor.get(agent_id)
        assert agent is not None
        self.floor.put(replace(agent, state=AgentState.AWAY))
        if self._qs is not None:
            self._qs.changed()
        self._refresh(agent, agent_id)

    def _refresh(self, before: Agent, agent_id: AgentId) -> None:
        """Keep free-slot counts per channel (a shortcut: no free slot, no decision to ask
        for) and, for exclusive-channel agents, close the other channels while busy."""
        after = self.floor.get(agent_id)
        assert after is not None
        spec = self._specs[agent_id]
        if spec.exclusive_channels:
            busy = [ch for ch, n in after.load.items() if n > 0]
            capacity = {ch: (n if not busy or ch in busy else 0) for ch, n in spec.capacity.items()}
            if capacity != after.capacity:
                after = replace(after, capacity=capacity)
                self.floor.put(after)
        free = self._free
        if before.is_available:
            for ch in before.capacity:
                free[ch] -= before.free_slots(ch)
        if after.is_available:
            for ch in after.capacity:
                free[ch] += after.free_slots(ch)

    def _offer(self, agent_id: AgentId, now: float) -> None:
        """An agent gained room: walk the heads of the waiting groups on its open channels
        in queue order (``queue_rank``) and give the first that `pick_agent` places; again
        until the agent is full or nothing fits -- what ``assign`` would do in a pass."""
        room, floor, rules = self._room, self.floor, self._rules
        qs, cuts = self._qs, self._cuts
        while room.count:
            agent = floor.get(agent_id)
            if agent is None or not agent.is_available:
                return
            heads = [
                (queue_rank(head.contact, rules[head.contact.issue]), head)
                for channel in agent.capacity
                if agent.free_slots(channel) > 0
                for head in (
                    room.heads(channel) if qs is None else room.classes(channel, cuts, now)
                )
            ]
            if len(heads) > 1:
                heads.sort(key=lambda entry: entry[0])
            for _, job in heads:
                if qs is None:
                    decision = pick_agent(job.contact, floor, rules[job.contact.issue], now)
                else:
                    decision = self._pick(job, rules[job.contact.issue], now)
                if decision is not None:
                    self._leave(job, now)
                    self._start(job, decision, now)
                    break
            else:
                return

    def _add_busy(self, agent_id: AgentId, since: float, until: float) -> None:
        """Busy time counts within the horizon only, like time on duty (occupancy)."""
        horizon = self.plan.horizon_s
        group = self._group_index[self._specs[agent_id].group]
        self.log.busy_s[group] += max(0.0, min(until, horizon) - min(since, horizon))

    def _close_busy(self) -> None:
        for agent_id, since in self._busy_since.items():
            self._add_busy(agent_id, since, self.log.end_s)


def simulate(plan: Plan, seed: int = 0, progress: Progress | None = None) -> RunLog:
    """Run `plan` once with `seed`: the same seed gives the same log."""
    return Engine(plan, seed, progress).run()
