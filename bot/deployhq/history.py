"""The servers' history, as DeployHQ lists it (newest first): what a rollback would put back,
what has run since a failure, and what proves a rollback went through. Servers and groups
overlap: a deployment counts for a server whether it went to that server, to a group holding
it, or to a group it belongs to, so every answer is read from deployments whose servers
*overlap*, and decided by DeployHQ's own timestamps."""

from __future__ import annotations

from collections.abc import Iterable

from bot.deployhq.deployment import Deployment


def reach(failed: Deployment) -> str:
    """Which of DeployHQ's lists holds every deployment that overlaps ``failed``'s servers,
    as its ``to=`` filter: a lone server in no group (by DeployHQ's record) has only its own;
    anything else (a server in a group, a group) is read from the project's whole list, so
    the answer holds whether ``to=`` lists only exact parents or group deployments too."""
    lone = len(failed.server_ids) == 1 and len(failed.servers) <= 1
    return failed.server_ids[0] if lone and not any(failed.server_groups) else ""


def last_good(history: Iterable[Deployment], failed: Deployment) -> Deployment | None:
    """The newest completed deployment from before ``failed`` on any of its servers: what a
    rollback would put back, offered only when it went to exactly those servers (anything
    else means no single rollback restores them without older code somewhere). ``history``
    is newest first, as DeployHQ lists it. DeployHQ rolls back to no config-files-only or
    archived deployment, so neither is offered."""
    for deployment in history:
        if deployment.identifier == failed.identifier or deployment.is_preview:
            continue
        if (
            deployment.status == "completed"
            and deployment.server_keys & failed.server_keys
            and not deployment.config_files_only  # it changed no code
            and not deployment.archived  # DeployHQ refuses it: the one before is offered
            and _before(deployment, failed)
        ):
            return deployment if deployment.server_keys == failed.server_keys else None
    return None


def newer_on_servers(history: Iterable[Deployment], failed: Deployment) -> Deployment | None:
    """A deployment queued after ``failed`` on any of its servers, by DeployHQ's own clock,
    whatever became of it (completed, under way or failed too): ``failed`` is then no longer
    the latest word on those servers, and acting on it could put older code over newer.

    ``history`` is newest first and is read no further than ``failed`` itself, so that what
    follows it (older deployments) is left to the caller."""
    for deployment in history:
        if deployment.identifier == failed.identifier:
            return None
        if deployment.is_preview:
            continue  # a preview changes nothing on the servers
        if deployment.server_keys & failed.server_keys and _before(failed, deployment):
            return deployment
    return None


def rolled_back_by(
    history: Iterable[Deployment], failed: Deployment, ref: str
) -> Deployment | None:
    """The deployment that proves a rollback of ``failed`` went through: on its servers, to
    ``ref`` (the target's end revision), queued after it, all by DeployHQ's own record. Read
    no further than ``failed`` (the list is newest first)."""
    for deployment in history:
        if deployment.identifier == failed.identifier:
            return None
        revision = deployment.end_revision.ref if deployment.end_revision else ""
        if (
            not deployment.is_preview
            and deployment.server_keys & failed.server_keys
            and revision == ref
            and _before(failed, deployment)
        ):
            return deployment
    return None


def _before(earlier: Deployment, later: Deployment) -> bool:
    first = earlier.queued_at or earlier.started_at
    second = later.queued_at or later.started_at
    return first is not None and second is not None and first < second
