"""A server's history, as DeployHQ lists it (newest first): what a rollback would put back, what
has run since a failure, and what proves a rollback went through. Every answer is decided by
DeployHQ's own timestamps."""

from __future__ import annotations

from collections.abc import Iterable

from bot.deployments import Deployment


def last_good(history: Iterable[Deployment], failed: Deployment) -> Deployment | None:
    """The newest completed deployment on exactly ``failed``'s servers, from before it: what a
    rollback would put back. ``history`` is newest first, as DeployHQ lists it. DeployHQ rolls
    back to no config-files-only or archived deployment, so neither is offered."""
    for deployment in history:
        if deployment.identifier == failed.identifier:
            continue
        same_servers = deployment.server_keys == failed.server_keys
        if (
            deployment.status == "completed"
            and same_servers
            and not deployment.config_files_only
            and not deployment.archived
            and _before(deployment, failed)
        ):
            return deployment
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
