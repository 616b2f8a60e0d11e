"""``/deployhq deploy``'s confirmed order as an action of the one pipeline: its claim is the
order (one deployment of one commit to one server or group), it holds the servers it changes,
its preflight finds the commit still new there, and DeployHQ's record proves it by a deployment
of that commit there. Its outcome is one channel message, posted once DeployHQ has answered and
edited as DeployHQ's record settles it, whichever process (or the reconciler) learns it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk import WebClient

from bot.actions.action import LAPSED, Answer, Checked, Go, Hold, Proof, Stop
from bot.actions.claims import WITHOUT_STORE, ActionClaim
from bot.actions.deploy_plan import ran_there, runs_there
from bot.deployhq.client import DeployHQ
from bot.deployhq.deployment import Deployment
from bot.messages import approvals, deploys
from bot.messages.text import Block, Message, notice
from bot.slack.client import SLACK_ERRORS, refused, slack_error
from bot.store.shared import Orders
from bot.words import states as s
from bot.words.actions import DEPLOY, ActionName, Outcome
from bot.words.buttons import DeployOrder

log = logging.getLogger(__name__)


class ChannelMessages:
    """Posts and edits the bot's own messages in a channel; a channel the bot may not post in
    gives way to ``fallback`` (the channel cards go to), so the team is always told."""

    def __init__(self, poster: WebClient, client: WebClient, fallback: str) -> None:
        self.poster = poster  # never re-sends a post by itself (a lost answer may be a post)
        self.client = client
        self.fallback = fallback

    def post(self, channel: str, mrkdwn: str, buttons: Sequence[Block] = ()) -> tuple[str, str]:
        """``(channel, ts)`` of the message posted; ``("", "")`` when none could be."""
        for where in dict.fromkeys(c for c in (channel, self.fallback) if c):
            try:
                answer = self.poster.chat_postMessage(channel=where, **_with(mrkdwn, buttons))
                return str(answer.get("channel") or where), str(answer.get("ts") or "")
            except SLACK_ERRORS as exc:
                log.warning("could not post a deploy's outcome to %s: %s", where, slack_error(exc))
                if not refused(exc):
                    break  # it may have been taken: never a second copy
        return "", ""

    def update(self, channel: str, ts: str, mrkdwn: str, buttons: Sequence[Block] = ()) -> bool:
        try:
            self.client.chat_update(channel=channel, ts=ts, **_with(mrkdwn, buttons))
            return True
        except SLACK_ERRORS as exc:
            log.warning("could not edit a deploy's message: %s", slack_error(exc))
            return False


def _with(mrkdwn: str, buttons: Sequence[Block]) -> Message:
    """A short message, with its buttons (a request's Approve and Deny) when it has any."""
    message = notice(mrkdwn)
    if buttons:
        message["blocks"] = [*message["blocks"], {"type": "actions", "elements": list(buttons)}]
    return message


class OrderView:
    """Where a confirmed deploy's outcome is shown: one channel message (``Orders`` keeps where
    it is), and privately to the person for what never reached DeployHQ."""

    def __init__(
        self, orders: Orders, messages: ChannelMessages, order: DeployOrder, channel: str
    ) -> None:
        self.orders = orders
        self.messages = messages
        self.order = order
        self.channel = channel

    def show(self, state: s.CardState, note: str, answer: Deployment | None = None) -> bool:
        run = self._run()
        if isinstance(state, s.Requested):  # kept before anything is sent, for the reconciler
            kept = {**run, "order": self.order.encode(), "channel": self.channel}
            self._keep({k: v for k, v in kept.items() if k != "awaiting"}, open_=True)
            return True
        text = deploys.outcome(state, self.order)
        if not text or (isinstance(state, s.NotDone) and not run.get("ts")):
            self._keep(run, open_=False)
            return False  # the channel heard nothing of it: only the person is told
        if isinstance(state, s.Awaiting):  # a request: the channel's message offers its buttons
            self._keep({**run, "awaiting": s.to_json(state)}, open_=True)
            return self._say(text, final=False, buttons=approvals.buttons(state.request))
        return self._say(text, final=not isinstance(state, s.InDoubt))

    def awaiting(self) -> s.Awaiting | None:
        """The request for approval the channel's message shows, if it shows one."""
        kept = self._run().get("awaiting")
        try:
            state = s.from_json(kept) if isinstance(kept, dict) else None
        except (KeyError, TypeError, ValueError):
            return None
        return state if isinstance(state, s.Awaiting) else None

    def done(self, claim: ActionClaim, answer: Answer, at: datetime) -> tuple[s.CardState, bool]:
        assert isinstance(answer, Deployment)  # an order answers with its deployment
        ref = answer.end_revision.ref if answer.end_revision else claim.ref
        state = s.DeployedLatest(
            claim.user_id, at, ref, answer.status, answer.identifier, claim.approved_by
        )
        said = deploys.deployed(claim.user_id, self.order, answer, claim.approved_by)
        return state, self._say(said, final=True)

    def _say(self, text: str, *, final: bool, buttons: Sequence[Block] = ()) -> bool:
        """Post the channel's message, or edit the one posted; closed once final."""
        run = self._run()
        channel, ts = str(run.get("where") or ""), str(run.get("ts") or "")
        if not (ts and self.messages.update(channel, ts, text, buttons)):
            channel, ts = self.messages.post(self.channel, text, buttons)
        self._keep({**run, "where": channel, "ts": ts}, open_=not final)
        return bool(ts)

    def _run(self) -> dict[str, Any]:
        raw = WITHOUT_STORE.read("kept", lambda: self.orders.run(self.order.key), None)
        try:
            run = json.loads(raw) if raw else {}
        except ValueError:
            run = {}
        return run if isinstance(run, dict) else {}

    def _keep(self, run: dict[str, Any], *, open_: bool) -> None:
        with WITHOUT_STORE.step("kept", self.order.key):
            self.orders.keep_run(self.order.key, json.dumps(run), open_=open_)


class Deploy:
    """A confirmed ``/deployhq deploy`` order, sent once across every click and process."""

    name: ActionName = "deploy"
    on_card = False

    def __init__(self, deployhq: DeployHQ, order: DeployOrder, view: OrderView) -> None:
        self.deployhq = deployhq
        self.order = order
        self.key = order.key
        self.project = order.project
        self.deployment = ""
        self.view = view

    @property
    def recipe(self) -> str:
        return json.dumps(
            {"kind": "order", "order": self.order.encode(), "channel": self.view.channel}
        )

    def preflight(self, hold: Hold, user_id: str) -> Checked:
        """With its servers held, DeployHQ's record shows the commit is still new there,
        nothing was queued there since the confirm was drawn (or the request made), and it is
        still the branch's newest commit: never older code over newer. Two calls: the servers'
        history and the branch's newest commit."""
        order = self.order
        busy = hold.servers(order.changes)
        if busy is not None:
            return busy
        there = runs_there(self.deployhq, order.project, order.changes, order.ref)
        if there.ran is not None:
            return self._stop(user_id, deploys.already_there(order.ref, order.name, there.ran))
        newest = there.newest
        if order.after is not None and newest is not None and newest.identifier != order.after:
            return self._stop(user_id, deploys.queued_since(order, newest), "overtaken")
        if not hold.renew():
            return LAPSED
        latest = self.deployhq.latest_revision(order.project, order.branch)
        if latest != order.ref:
            return self._stop(user_id, deploys.branch_moved(order, latest))
        return Go(
            lambda: self.deployhq.deploy(order.project, order.parent, order.branch, order.ref),
            order.ref,
        )

    def _stop(self, user_id: str, why: str, outcome: Outcome = "out-of-date") -> Stop:
        """Nothing is sent, and why: told to the person, and said in the channel's message
        when there is one (a request for approval, now ended)."""
        log.info("deploy of %s not sent: %s", self.key, outcome)
        self.view.show(s.NotDone(user_id, why, DEPLOY), why)
        return Stop(outcome, why)

    def prove(self, claim: ActionClaim) -> Proof:
        """A deployment of the commit to the server or group: the preflight found none before
        the call went out."""
        order = self.order
        return Proof(done=ran_there(self.deployhq, order.project, order.changes, order.ref))


class DeployOrders:
    """Makes the action a confirm's button names, and the one the reconciler settles."""

    def __init__(self, deployhq: DeployHQ, orders: Orders, messages: ChannelMessages) -> None:
        self.deployhq = deployhq
        self.orders = orders
        self.messages = messages

    def of(self, order: DeployOrder, channel: str) -> Deploy:
        view = OrderView(self.orders, self.messages, order, channel)
        return Deploy(self.deployhq, order, view)

    def kept(self, key: str) -> Deploy | None:
        """The confirmed deploy under claim ``key`` whose outcome the channel has not been
        told; None when none is kept."""
        raw = self.orders.run(key)
        try:
            run = json.loads(raw) if raw else None
            order = DeployOrder.decode(str(run["order"])) if isinstance(run, dict) else None
        except (ValueError, KeyError):
            order = None
        if order is None or not isinstance(run, dict):
            return None
        return self.of(order, str(run.get("channel") or ""))
