"""Routes, action ids, and the data a Retry or Roll back button carries back to us."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot.deployments import Deployment, is_identifier

# The routes Slack and DeployHQ call (the manifest and doctor print them).
SLACK_EVENTS_PATH = "/slack/events"
WEBHOOK_PATH = "/deployhq/webhook"

RETRY_ACTION = "deployhq_retry"
ROLLBACK_ACTION = "deployhq_rollback"
OPEN_ACTION = "deployhq_open"


@dataclass(frozen=True)
class ActionTarget:
    """Which failure of which deployment an action (a retry or a rollback) is for: what a
    Retry button carries.

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
