"""What DeployHQ's record must still show before a Deploy latest or an Abort is sent (the
pipeline in ``actions.py`` has already checked, for a Deploy latest, what it checks for a Retry:
the failure is still there and nothing has run on its servers since).

Each check answers None (go ahead) or why not, in the words the person is told.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.deployhq.client import DeployHQ
from bot.deployhq.deployment import Deployment
from bot.messages.text import outside, when
from bot.words.buttons import AbortTarget, DeployTarget

UNDER_WAY = ("pending", "running")


@dataclass(frozen=True)
class Stop:
    """Why nothing is sent; ``latest``: the branch's newest commit as DeployHQ gives it now,
    when the card is to offer that one instead."""

    why: str
    latest: str = ""


def deploy_latest(
    deployhq: DeployHQ, target: DeployTarget, record: Deployment, older: Iterable[Deployment]
) -> Stop | None:
    """The commit the button named is still the branch's newest, and it is new to the
    failure's servers: not what the failed run deployed, nor what any earlier deployment on
    them did, alone or in a group (that would be older code, or the same). ``older``: the
    deployments from before the failure, newest first. ``DeployHQError`` when DeployHQ cannot
    be read."""
    if not record.parent:
        return Stop(
            ":information_source: Nothing was deployed: this deployment's servers are neither "
            "one server nor one server group, so DeployHQ cannot be asked to deploy to them."
        )
    if not record.branch:
        return Stop(":information_source: Nothing was deployed: DeployHQ names no branch.")
    latest = deployhq.latest_revision(target.project, record.branch)
    if latest != target.ref:
        return Stop(
            f":information_source: Nothing was deployed: `{outside(record.branch, 100)}` has "
            f"moved on to `{outside(latest[:7], 7)}` since the card was drawn. The card has been "
            "redrawn; look again before you press Deploy latest.",
            latest,
        )
    if record.end_revision is not None and record.end_revision.ref == latest:
        return Stop(
            f":information_source: Nothing was deployed: `{outside(latest[:7], 7)}` is the "
            "revision that failed; there is nothing newer on the branch. Retry it instead.",
            latest,
        )
    for earlier in older:
        ran = earlier.end_revision.ref if earlier.end_revision else ""
        overlaps = earlier.server_keys & record.server_keys
        if overlaps and ran == latest and not earlier.is_preview:
            moment = earlier.finished_at
            at = f" {when(moment)}" if moment else ""
            return Stop(
                f":no_entry: Nothing was deployed: `{outside(latest[:7], 7)}` already went to "
                f"these servers in deployment `{outside(earlier.short_id, 8)}`{at}, so it is "
                "not newer than what they run."
            )
    return None


def abort(target: AbortTarget, record: Deployment) -> Stop | None:
    """The run the button named is still pending or running."""
    queued = int(record.queued_at.timestamp()) if record.queued_at else 0
    if record.status in UNDER_WAY and queued == target.queued:
        return None
    status = outside(record.status, 50)
    if record.status in UNDER_WAY:
        return Stop(
            ":information_source: Nothing was aborted: DeployHQ has queued this deployment "
            "again since the card was drawn. The card has been redrawn; look again."
        )
    return Stop(
        f":information_source: Nothing was aborted: DeployHQ shows this deployment as "
        f"*{status}*, so it is no longer under way."
    )
