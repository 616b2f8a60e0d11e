"""One action at a time: the claim an action takes before it may call DeployHQ, and the
servers it holds while it changes them.

A claim is keyed by what was asked (a failure's ``Deployment.run_key``, a run to abort, a
``/deployhq deploy`` order), so a button and a command about one failure share it, and a retry
and a rollback of it exclude each other. An action that queues a deployment also holds each
**server** it will change (a group counts as each of its servers): no two such actions, from
whichever card or command, are in flight on one server. A server's hold names the claim that
took it and lasts exactly as long as that claim is under way (running, sending or in doubt),
so it is freed with the claim, by DeployHQ's record, and a holder that died frees it when its
claim lapses. A claim's life:

- ``running``: claimed, nothing sent yet. It lasts ``lock_seconds`` and is renewed before each
  call; a holder that dies frees the failure that long after, having sent nothing.
- ``sending``: the call is going out. From here it never expires by itself: its holder has a
  lease to hear DeployHQ's answer, and past that the claim counts as in doubt.
- ``in-doubt``: the answer was lost; the action may have happened, so nothing more is sent
  until DeployHQ's record proves what did (``settle``).
- ``done``: DeployHQ took it; kept, so later clickers learn who acted and when.

An action on servers that need a second person's approval waits, before anything is sent, as
``awaiting``: its servers held, nothing sent, until ``until`` (then it lapses by itself). An
approver's Approve moves it to ``running`` (once, whoever else presses), with ``approved_by``;
a Deny or the lapse frees it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.store.kv import REMEMBER_SECONDS, Keys, KeyValue, StoreUnavailable, WithoutStore
from bot.words.actions import RETRY, ActionName, action_named

# What a missing store means to an action, decided here, step by step: before anything is sent,
# nothing is sent; once it is sent, DeployHQ's record stands (it is the arbiter, not the
# store); bookkeeping left undone frees or ends itself. The pipeline, the approvals, the previews
# and the reconciler take each step's fallback as its meaning says.
WITHOUT_STORE = WithoutStore(
    "actions",
    {
        "claim": "nothing is sent; the person is told the store is unavailable",
        "keep claim": "the claim lapsed: nothing is sent, and the card is back on its failure",
        "request": "no request for approval is made: nothing is sent, and the person is told",
        "decide": "no decision is made; the approver is told the store is unavailable",
        "preview": "no preview is asked for; the person is told the store is unavailable",
        "finish": "DeployHQ's answer stands and is shown; the claim, still sending, is settled "
        "from DeployHQ's record",
        "doubt": "in doubt all the same: the recheck and the reconciler settle it from "
        "DeployHQ's record",
        "settle": "still in doubt; the next look settles it",
        "release": "nothing was sent; the claim and its servers free themselves when they expire",
        "kept": "not kept (a request's message, where a deploy is shown, how a request ended): "
        "it lapses or stays listed until it expires",
        "reconcile": "this pass ends; the next one looks again",
        "cache": "read afresh from Slack, and not kept",
    },
)
# Longer than the slowest DeployHQ call; the settings derive it from DeployHQ's timeouts.
CLAIM_SECONDS = 30.0


class Stage(StrEnum):
    """Where a claim is in its life (stored by these values; see the module's docstring)."""

    AWAITING = "awaiting"
    RUNNING = "running"
    SENDING = "sending"
    IN_DOUBT = "in-doubt"
    DONE = "done"


AWAITING, RUNNING, SENDING, IN_DOUBT, DONE = Stage
# The moves a claim may make; any other is refused (``IllegalMove``). Ending without a move
# (released, withdrawn, lapsed, or settled as never done) deletes it instead.
MOVES: dict[Stage, frozenset[Stage]] = {
    RUNNING: frozenset({AWAITING, SENDING}),
    AWAITING: frozenset({RUNNING}),  # approved
    SENDING: frozenset({IN_DOUBT, DONE}),
    IN_DOUBT: frozenset({DONE}),  # settled from DeployHQ's record
    DONE: frozenset(),
}


class IllegalMove(RuntimeError):
    """A claim asked to move where its life does not go: a bug, never an action."""


def moved(claim: ActionClaim, to: Stage, **changes: Any) -> ActionClaim:
    """``claim`` moved on to ``to``; ``IllegalMove`` when it may not go there from where it is."""
    if to not in MOVES[claim.state]:
        raise IllegalMove(f"a {claim.state} claim cannot become {to}")
    return replace(claim, state=to, **changes)


# The claims' keys were named when retrying was the only action; stored claims are found by it.
_KEY = "retry"


@dataclass(frozen=True)
class ActionClaim:
    """Who holds (or held) the one action on one failure (a retry, a roll back or a deploy of
    the latest commit; an abort, on one run), and how far it got.

    ``sent_at`` and ``lease_seconds``: when the call went out, and how long its holder has to
    hear the answer. ``lost_at``: when the answer was lost; DeployHQ's record is looked at for
    ``doubt_seconds`` from then. ``ref``: for a rollback, the revision it puts back, by which
    DeployHQ's record proves it.
    """

    user_id: str
    at: datetime
    token: str
    state: Stage = Stage.RUNNING
    action: ActionName = RETRY  # one claim per failure covers its three; an abort, per run
    ref: str = ""
    sent_at: datetime | None = None
    lease_seconds: float = 0.0
    lost_at: datetime | None = None
    doubt_seconds: float = 0.0
    servers: tuple[str, ...] = ()  # the servers it holds (``Claims.hold_servers``)
    approved_by: str = ""  # the approver, for an action whose servers need one
    until: datetime | None = None  # when a request for approval lapses

    @property
    def awaiting(self) -> bool:
        return self.state == AWAITING

    @property
    def done(self) -> bool:
        return self.state == DONE

    def lost(self, now: datetime | None = None) -> datetime | None:
        """When the answer was lost: at once for ``in-doubt``; for ``sending``, once the
        holder's lease has run out (it died, or never heard back); else None."""
        if self.state == IN_DOUBT:
            return self.lost_at or self.at
        if self.state == SENDING and self.sent_at is not None:
            lapsed = self.sent_at + timedelta(seconds=self.lease_seconds)
            return lapsed if (now or datetime.now(UTC)) >= lapsed else None
        return None

    @property
    def in_doubt(self) -> bool:
        return self.lost() is not None

    def doubt_over(self, now: datetime | None = None) -> bool:
        """Whether DeployHQ's record has had the whole doubt window to show the action."""
        lost = self.lost(now)
        return lost is not None and (now or datetime.now(UTC)) >= lost + timedelta(
            seconds=self.doubt_seconds
        )

    @property
    def under_way(self) -> bool:
        """Awaiting approval, running, sending or in doubt: what it does to its servers is not
        yet known."""
        return self.state != DONE

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "user": self.user_id,
            "at": self.at.timestamp(),
            "token": self.token,
            "state": self.state.value,
            "action": self.action,
            "ref": self.ref,
            "sent_at": self.sent_at.timestamp() if self.sent_at else None,
            "lease": self.lease_seconds,
            "lost_at": self.lost_at.timestamp() if self.lost_at else None,
            "doubt": self.doubt_seconds,
        }
        # Written only when set, so older claims read back as they were.
        if self.servers:
            data["servers"] = list(self.servers)
        if self.approved_by:
            data["approved_by"] = self.approved_by
        if self.until is not None:
            data["until"] = self.until.timestamp()
        return json.dumps(data)

    @classmethod
    def from_json(cls, raw: str) -> ActionClaim:
        data = json.loads(raw)

        def moment(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromtimestamp(float(value), UTC) if value is not None else None

        return cls(
            user_id=str(data["user"]),
            at=datetime.fromtimestamp(float(data["at"]), UTC),
            token=str(data["token"]),
            state=Stage(data.get("state", RUNNING)),
            action=action_named(data.get("action")),
            ref=str(data.get("ref") or ""),
            sent_at=moment("sent_at"),
            lease_seconds=float(data.get("lease") or 0.0),
            lost_at=moment("lost_at"),
            doubt_seconds=float(data.get("doubt") or 0.0),
            servers=tuple(str(s) for s in data.get("servers") or () if isinstance(s, str)),
            approved_by=str(data.get("approved_by") or ""),
            until=moment("until"),
        )


class Claims:
    """The claims on failures, in the store; every change is a compare-and-set on the claim as
    read, so a stale holder can never overwrite a newer claim."""

    def __init__(
        self,
        kv: KeyValue,
        keys: Keys,
        *,
        lock_seconds: float = CLAIM_SECONDS,
        remember_seconds: float = REMEMBER_SECONDS,
    ) -> None:
        self.kv = kv
        self.keys = keys
        self.lock_seconds = lock_seconds
        self.remember_seconds = remember_seconds

    def take(
        self, run_key: str, user_id: str, action: ActionName = RETRY, ref: str = ""
    ) -> tuple[bool, ActionClaim]:
        """Take one failure (or run), for one action: ``(True, mine)``, or ``(False, the
        holder's)``; a retry and a rollback of the same failure exclude each other."""
        key = self._key(run_key)
        mine = ActionClaim(user_id, datetime.now(UTC), uuid.uuid4().hex, action=action, ref=ref)
        for _ in range(3):  # the holder's claim can expire between our add and get
            if self.kv.add(key, mine.to_json(), self.lock_seconds):
                return True, mine
            held = self.kv.get(key)
            if held == mine.to_json():  # our add went through but its answer was lost
                return True, mine
            if held is not None:
                return False, ActionClaim.from_json(held)
        raise StoreUnavailable("the claim kept changing hands")

    def renew(self, run_key: str, claim: ActionClaim) -> bool:
        """Renew a claim's full lifetime; False when it expired or passed to someone else."""
        value = claim.to_json()
        return self.kv.swap(self._key(run_key), value, value, self.lock_seconds)

    def mark_sending(
        self,
        run_key: str,
        claim: ActionClaim,
        lease_seconds: float,
        doubt_seconds: float,
        ref: str = "",
    ) -> ActionClaim | None:
        """Make the claim durable just before the call goes out: from now on only DeployHQ's
        record frees this failure. None when the claim lapsed or passed to someone else (then
        nothing may be sent)."""
        sending = moved(
            claim,
            SENDING,
            ref=ref,
            sent_at=datetime.now(UTC),
            lease_seconds=lease_seconds,
            doubt_seconds=doubt_seconds,
        )
        if self.kv.swap(
            self._key(run_key), claim.to_json(), sending.to_json(), self.remember_seconds
        ):
            return sending
        return None

    def await_approval(
        self, run_key: str, claim: ActionClaim, until: datetime
    ) -> ActionClaim | None:
        """Keep the claim, its servers held and nothing sent, until an approver decides or
        ``until`` passes (then it lapses by itself). None when it lapsed meanwhile."""
        waiting = moved(claim, AWAITING, until=until)
        seconds = max(1.0, (until - datetime.now(UTC)).total_seconds())
        if self.kv.swap(self._key(run_key), claim.to_json(), waiting.to_json(), seconds):
            return waiting
        return None

    def approve(self, run_key: str, claim: ActionClaim, approver: str) -> ActionClaim | None:
        """The awaiting claim, as read, approved by ``approver``: running again, for the
        preflight and the call. None when someone else decided first, or it lapsed."""
        running = moved(claim, RUNNING, approved_by=approver, until=None)
        if self.kv.swap(self._key(run_key), claim.to_json(), running.to_json(), self.lock_seconds):
            return running
        return None

    def withdraw(self, run_key: str, claim: ActionClaim) -> bool:
        """Free an awaiting claim, as read, with nothing sent (denied, withdrawn, lapsed);
        False when someone else decided first."""
        if not self.kv.delete_if(self._key(run_key), claim.to_json()):
            return False
        self._free_servers(run_key, claim)
        return True

    def finish(self, run_key: str, claim: ActionClaim) -> ActionClaim:
        """Keep a successful claim, so later clickers learn who acted and when; its servers
        are free again (DeployHQ's answer is its record of what now runs there)."""
        done = self._move(run_key, claim, DONE)
        self._free_servers(run_key, claim)
        return done

    def doubt(self, run_key: str, claim: ActionClaim) -> ActionClaim:
        """Keep a claim whose outcome is unknown, until DeployHQ's record settles it; the doubt
        window starts now, when the answer was lost."""
        return self._move(run_key, claim, IN_DOUBT, lost_at=datetime.now(UTC))

    def settle(self, run_key: str, claim: ActionClaim, done: bool) -> ActionClaim | None:
        """Settle an in-doubt claim from DeployHQ's record: done, or released when the record
        proved nothing happened. Only for the claim as read: whoever settles it first does the
        telling, and a newer claim is never overwritten. None when someone else already had."""
        key = self._key(run_key)
        if done:
            settled = moved(claim, DONE)
            ok = self.kv.swap(key, claim.to_json(), settled.to_json(), self.remember_seconds)
        else:
            settled, ok = claim, self.kv.delete_if(key, claim.to_json())
        if not ok:
            return None
        self._free_servers(run_key, claim)
        return settled

    def held(self, run_key: str) -> ActionClaim | None:
        """The claim on this failure, if there is one."""
        raw = self.kv.get(self._key(run_key))
        return ActionClaim.from_json(raw) if raw else None

    def forget_done(self, run_key: str) -> None:
        """Forget a done claim: what it did has been undone since (a pause, by a resume), so
        the same action may be asked for again."""
        key = self._key(run_key)
        held = self.kv.get(key)
        if held is not None and ActionClaim.from_json(held).done:
            self.kv.delete_if(key, held)

    def release(self, run_key: str, claim: ActionClaim) -> None:
        """Give the failure (and its servers) back, nothing having been sent, if the claim is
        still ours."""
        self.kv.delete_if(self._key(run_key), claim.to_json())
        self._free_servers(run_key, claim)

    def hold_servers(
        self, run_key: str, claim: ActionClaim, servers: frozenset[str]
    ) -> tuple[ActionClaim | None, ActionClaim | None]:
        """Hold every one of ``servers`` for the claim on ``run_key``, or none of them:
        ``(mine, None)`` with the claim now naming them; ``(None, holder)`` when another action
        under way holds one of them; ``(None, None)`` when our own claim lapsed meanwhile.
        A hold whose claim is no longer under way (done, lapsed, settled) is stale and taken
        over."""
        mark = _mark(run_key, claim)
        taken: list[str] = []
        holder: ActionClaim | None = None
        for server in sorted(servers):  # one order for everyone, and nothing ever waits
            key = self._server_key(server)
            if self._take_server(key, mark):
                taken.append(key)
                continue
            holder = self._holder(self.kv.get(key))
            break
        else:
            mine = replace(claim, servers=tuple(sorted(servers)))
            if self.kv.swap(self._key(run_key), claim.to_json(), mine.to_json(), self.lock_seconds):
                return mine, None
        for key in taken:
            self.kv.delete_if(key, mark)
        return None, holder

    def _take_server(self, key: str, mark: str) -> bool:
        for _ in range(3):  # the hold can change hands between our add and get
            if self.kv.add(key, mark, self.remember_seconds):
                return True
            held = self.kv.get(key)
            if held == mark:
                return True
            if held is None:
                continue
            if self._holder(held) is not None:
                return False
            if self.kv.swap(key, held, mark, self.remember_seconds):  # a stale hold
                return True
        return False

    def _holder(self, held: str | None) -> ActionClaim | None:
        """The claim under way that a server's hold names; None when it is stale."""
        try:
            data = json.loads(held or "")
            claim = self.held(str(data["run"]))
        except (ValueError, KeyError, TypeError):
            return None
        if claim is None or claim.token != data.get("token") or not claim.under_way:
            return None
        return claim

    def _free_servers(self, run_key: str, claim: ActionClaim) -> None:
        mark = _mark(run_key, claim)
        for server in claim.servers:
            self.kv.delete_if(self._server_key(server), mark)

    def _server_key(self, server: str) -> str:
        return self.keys("server", server)

    def _move(self, run_key: str, claim: ActionClaim, to: Stage, **changes: Any) -> ActionClaim:
        after = moved(claim, to, **changes)
        key = self._key(run_key)
        if not self.kv.swap(key, claim.to_json(), after.to_json(), self.remember_seconds):
            # Lost (Redis forgot it) or taken over: what DeployHQ did still stands, so say it.
            self.kv.add(key, after.to_json(), self.remember_seconds)
        return after

    def _key(self, run_key: str) -> str:
        return self.keys(_KEY, run_key)


def _mark(run_key: str, claim: ActionClaim) -> str:
    """What a server's hold says: whose claim holds it."""
    return json.dumps({"run": run_key, "token": claim.token}, separators=(",", ":"))
