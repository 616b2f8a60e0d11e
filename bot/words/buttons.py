"""Routes, the action ids of the buttons that are no action (an action's own is in the table of
actions, words/actions.py), and the data buttons carry back to us."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from bot.deployhq.deployment import Deployment, is_identifier

# The routes Slack and DeployHQ call (the manifest and doctor print them).
SLACK_EVENTS_PATH = "/slack/events"
WEBHOOK_PATH = "/deployhq/webhook"

OPEN_ACTION = "deployhq_open"
DEPLOY_CONFIRM_ACTION = "deployhq_deploy_confirm"  # /deployhq deploy's confirm: Deploy
DEPLOY_CANCEL_ACTION = "deployhq_deploy_cancel"  # and Cancel
APPROVE_ACTION = "deployhq_approve"  # four eyes: a request's Approve
DENY_ACTION = "deployhq_deny"  # and Deny (or, by the requester, withdraw)
# Preview: what a Roll back, a Deploy latest or a /deployhq deploy would change; never an action.
PREVIEW_ROLLBACK_ACTION = "deployhq_preview_rollback"  # carries the Roll back's value
PREVIEW_DEPLOY_ACTION = "deployhq_preview_deploy"  # carries the Deploy latest's value
PREVIEW_ORDER_ACTION = "deployhq_preview_order"  # carries the confirm's order token
_REF = re.compile(r"[0-9A-Za-z._/-]{1,100}")


@dataclass(frozen=True)
class ActionTarget:
    """Which failure of which deployment an action (any of the card's buttons) is for: what each
    button carries.

    ``run_key`` names the failure (see ``Deployment.run_key``), so the claim taken for it is
    shared by every click and command about that failure, and a later failure gets a new one.
    """

    project: str
    deployment: str
    run_key: str

    @classmethod
    def of(cls, deployment: Deployment) -> ActionTarget:
        return cls(deployment.project_permalink, deployment.identifier, deployment.run_key)

    def encode(self) -> str:
        return json.dumps(
            {"p": self.project, "d": self.deployment, "r": self.run_key}, separators=(",", ":")
        )

    @classmethod
    def decode(cls, value: str) -> ActionTarget:
        """The target a button value names; ``ValueError`` when it names none."""
        try:
            data = json.loads(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError("the button value is not JSON") from exc
        if not isinstance(data, dict):
            raise ValueError("the button value is not an object")
        project, deployment, run_key = data.get("p"), data.get("d"), data.get("r")
        if not (isinstance(project, str) and 0 < len(project) <= 255):
            raise ValueError("the button names no project")
        if not (isinstance(deployment, str) and is_identifier(deployment)):
            raise ValueError("the button names no deployment")
        if not (isinstance(run_key, str) and run_key.startswith(deployment + ":")):
            raise ValueError("the button names no failure of that deployment")
        return cls(project, deployment, run_key)


@dataclass(frozen=True)
class RollbackTarget(ActionTarget):
    """A Roll back button: the failure it is for (so it shares the Retry's claim) and the
    completed deployment whose revision goes back onto the servers."""

    to: str = ""

    def encode(self) -> str:
        return json.dumps(
            {"p": self.project, "d": self.deployment, "r": self.run_key, "to": self.to},
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, value: str) -> RollbackTarget:
        failure = ActionTarget.decode(value)
        to = json.loads(value).get("to")
        if not (isinstance(to, str) and is_identifier(to)):
            raise ValueError("the button names no deployment to roll back to")
        return cls(failure.project, failure.deployment, failure.run_key, to)


@dataclass(frozen=True)
class DeployTarget(ActionTarget):
    """A Deploy latest button: the failure it is for (so it shares Retry's claim) and the
    branch's newest commit it deploys, which DeployHQ must still give when it is pressed."""

    ref: str = ""

    def encode(self) -> str:
        return json.dumps(
            {"p": self.project, "d": self.deployment, "r": self.run_key, "ref": self.ref},
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, value: str) -> DeployTarget:
        failure = ActionTarget.decode(value)
        ref = json.loads(value).get("ref")
        if not (isinstance(ref, str) and _REF.fullmatch(ref)):
            raise ValueError("the button names no commit to deploy")
        return cls(failure.project, failure.deployment, failure.run_key, ref)


@dataclass(frozen=True)
class AbortTarget(ActionTarget):
    """An Abort button: the card it is on (``deployment``), and the run it aborts: deployment
    ``run`` as queued at ``queued`` (Unix seconds). ``run_key`` names that run, so every click
    about it shares one claim, and a run queued later gets a new one."""

    run: str = ""
    queued: int = 0

    @classmethod
    def of_run(cls, card: str, running: Deployment) -> AbortTarget:
        queued = int(running.queued_at.timestamp()) if running.queued_at else 0
        run_key = f"{card}:abort:{running.identifier}:{queued}"
        return cls(running.project_permalink, card, run_key, running.identifier, queued)

    def encode(self) -> str:
        return json.dumps(
            {"p": self.project, "d": self.deployment, "a": self.run, "q": self.queued},
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, value: str) -> AbortTarget:
        try:
            data = json.loads(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError("the button value is not JSON") from exc
        if not isinstance(data, dict):
            raise ValueError("the button value is not an object")
        project, card, run, queued = data.get("p"), data.get("d"), data.get("a"), data.get("q")
        if not (isinstance(project, str) and 0 < len(project) <= 255):
            raise ValueError("the button names no project")
        if not all(isinstance(i, str) and is_identifier(i) for i in (card, run)):
            raise ValueError("the button names no deployment")
        if not isinstance(queued, int) or isinstance(queued, bool):
            raise ValueError("the button names no run")
        assert isinstance(card, str) and isinstance(run, str)
        return cls(project, card, f"{card}:abort:{run}:{queued}", run, queued)


@dataclass(frozen=True)
class DeployOrder:
    """What ``/deployhq deploy``'s confirm carries: commit ``ref`` of ``branch`` to the server
    or group ``parent`` (named ``name``) of ``project``. ``key`` is its claim: one deployment
    of one commit to one target, however many click."""

    project: str
    parent: str
    name: str
    branch: str
    ref: str
    # The servers it changes: the server itself, or each of the group's (as DeployHQ listed
    # them when the confirm was drawn).
    servers: tuple[str, ...] = ()
    # The newest deployment queued on them when the confirm was drawn ("" when none; None for
    # an order kept before this was recorded): anything queued there since stops the deploy.
    after: str | None = None

    @property
    def key(self) -> str:
        return f"deploy:{self.project}:{self.parent}:{self.ref}"

    @property
    def changes(self) -> frozenset[str]:
        """The servers held while it is under way (an order kept before they were listed
        holds its target)."""
        return frozenset(self.servers or (self.parent,))

    def encode(self) -> str:
        return json.dumps(
            {
                "p": self.project,
                "t": self.parent,
                "n": self.name,
                "b": self.branch,
                "ref": self.ref,
                **({"s": list(self.servers)} if self.servers else {}),
                **({"a": self.after} if self.after is not None else {}),
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, value: str) -> DeployOrder:
        try:
            data = json.loads(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError("the button value is not JSON") from exc
        if not isinstance(data, dict):
            raise ValueError("the button value is not an object")
        fields = [data.get(k) for k in ("p", "t", "n", "b", "ref")]
        if not all(isinstance(f, str) and 0 < len(f) <= 255 for f in fields):
            raise ValueError("the button names no deploy")
        project, parent, name, branch, ref = (str(f) for f in fields)
        if not (is_identifier(parent) or _REF.fullmatch(parent)) or not _REF.fullmatch(ref):
            raise ValueError("the button names no server or commit")
        servers = data.get("s") or []
        if not (isinstance(servers, list) and all(isinstance(s, str) for s in servers)):
            raise ValueError("the order names no servers")
        after = data.get("a")
        if not (after is None or after == "" or (isinstance(after, str) and is_identifier(after))):
            raise ValueError("the order names no deployment it came after")
        return cls(project, parent, name, branch, ref, tuple(servers), after)


@dataclass(frozen=True)
class AutoDeployTarget:
    """What Pause auto-deploy and Resume auto-deploy carry (and ``/deployhq freeze`` makes):
    the server or group ``identifier`` of ``project`` whose automatic deployments go ``on`` or
    off, and the card it is on (``card``, "" from the keyboard). ``key`` is its claim: one
    change of one deployable's automatic deployments to one state, however many ask."""

    project: str
    identifier: str
    on: bool
    card: str = ""

    @property
    def key(self) -> str:
        return f"auto-deploy:{self.project}:{self.identifier}:{'on' if self.on else 'off'}"

    @property
    def opposite(self) -> str:
        """The claim of the change the other way, which this one undoes."""
        return f"auto-deploy:{self.project}:{self.identifier}:{'off' if self.on else 'on'}"

    def encode(self) -> str:
        return json.dumps(
            {"p": self.project, "t": self.identifier, "on": self.on, "d": self.card},
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, value: str) -> AutoDeployTarget:
        try:
            data = json.loads(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError("the button value is not JSON") from exc
        if not isinstance(data, dict):
            raise ValueError("the button value is not an object")
        project, identifier, on, card = (data.get(k) for k in ("p", "t", "on", "d"))
        if not (isinstance(project, str) and 0 < len(project) <= 255):
            raise ValueError("the button names no project")
        if not (isinstance(identifier, str) and _REF.fullmatch(identifier)):
            raise ValueError("the button names no server or group")
        if not isinstance(on, bool):
            raise ValueError("the button names no change")
        if not (card == "" or (isinstance(card, str) and is_identifier(card))):
            raise ValueError("the button names no card")
        return cls(project, identifier, on, str(card))
