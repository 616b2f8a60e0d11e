"""The deployment as the bot sees it, parsed defensively from DeployHQ's JSON.

DeployHQ's payloads vary between deliveries (numbers as strings, booleans as "", missing deployer,
null timestamps, extra fields), so every field is read with a fallback and only the identifier,
which names the deployment everywhere, is required.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# DeployHQ identifiers are UUIDs; this is a little looser but keeps them safe in keys and URLs.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_PERMALINK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_MAX_FIELD = 2000

FAILED = "failed"
# Statuses a deployment does not leave by itself (a retry can still re-queue a failed one).
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "preview_ready", "preview_failed"})


_STATUS_RANK = {
    "pending": 0,
    "preview_pending": 0,
    "running": 1,
    "completed": 2,
    "failed": 2,
    "cancelled": 2,
    "preview_ready": 2,
    "preview_failed": 2,
}


def is_identifier(value: str) -> bool:
    return bool(_IDENTIFIER.fullmatch(value))


def is_permalink(value: str) -> bool:
    """A project's permalink (or identifier), as DeployHQ's URLs and our settings name it."""
    return bool(_PERMALINK.fullmatch(value))


@dataclass(frozen=True)
class Revision:
    ref: str
    message: str = ""
    author: str = ""

    @property
    def short_ref(self) -> str:
        return self.ref[:7]

    @property
    def headline(self) -> str:
        """The commit message's first line."""
        return self.message.strip().split("\n", 1)[0].strip()


@dataclass(frozen=True)
class Deployment:
    identifier: str
    status: str
    project_name: str
    project_permalink: str
    branch: str = ""
    deployer: str = ""
    start_revision: Revision | None = None
    end_revision: Revision | None = None
    servers: tuple[str, ...] = ()
    server_ids: tuple[str, ...] = ()
    # Each server's group (``servers[].server_group_identifier``), where DeployHQ gives one.
    server_groups: tuple[str, ...] = ()
    queued_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration: float | None = None
    archived: bool = False  # DeployHQ retries and rolls back to no archived deployment
    config_files_only: bool = False  # nor rolls back to one that only copied config files
    # Read from DeployHQ's own record of the deployment (which lists its steps): whether it
    # did, and the step that failed. A delivery's steps are never trusted for this.
    steps_read: bool = False
    failed_step: Step | None = None
    # DeployHQ's own summary of what the deployment changes, when it has made one.
    overview: str = ""

    @classmethod
    def from_api(cls, data: Any, *, project: str = "", steps: bool = False) -> Deployment:
        """Parse a deployment object; ``ValueError`` when it is not one.

        ``project`` is the permalink used to fetch it, for API answers that omit the project.
        ``steps``: the object is DeployHQ's own record, whose ``steps`` say which one failed.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a deployment must be a JSON object")
        identifier = _text(data.get("identifier"))
        if not is_identifier(identifier):
            raise ValueError("the deployment has no valid 'identifier'")
        proj = _mapping(data.get("project"))
        permalink = _text(proj.get("permalink")) or _text(proj.get("identifier")) or project
        if not permalink:
            raise ValueError("the deployment names no project (project.permalink)")
        timestamps = _mapping(data.get("timestamps"))
        started_at = _time(timestamps.get("started_at"))
        completed_at = _time(timestamps.get("completed_at"))
        duration = _number(timestamps.get("duration"))
        if duration is None and started_at and completed_at:
            duration = max(0.0, (completed_at - started_at).total_seconds())
        servers = data.get("servers")
        return cls(
            identifier=identifier,
            status=_text(data.get("status")).lower() or "unknown",
            project_name=_text(proj.get("name")) or permalink,
            project_permalink=permalink,
            # Older deliveries carry the branch only on the project's repository.
            branch=_text(data.get("branch"))
            or _text(_mapping(proj.get("repository")).get("branch")),
            deployer=_text(data.get("deployer")),
            start_revision=_revision(data.get("start_revision")),
            end_revision=_revision(data.get("end_revision")),
            servers=tuple(
                name
                for server in (servers if isinstance(servers, list) else [])
                if isinstance(server, Mapping) and (name := _text(server.get("name")))
            ),
            server_ids=tuple(
                ident
                for server in (servers if isinstance(servers, list) else [])
                if isinstance(server, Mapping) and (ident := _text(server.get("identifier")))
            ),
            server_groups=tuple(  # one for each of ``servers`` (those with a name)
                _text(server.get("server_group_identifier"))
                for server in (servers if isinstance(servers, list) else [])
                if isinstance(server, Mapping) and _text(server.get("name"))
            ),
            queued_at=_time(timestamps.get("queued_at")),
            started_at=started_at,
            completed_at=completed_at,
            duration=duration,
            archived=data.get("archived") is True,
            config_files_only=data.get("config_files_deployment") is True,
            steps_read=steps and isinstance(data.get("steps"), list),
            failed_step=failing_step(data) if steps else None,
            overview=_text(data.get("overview")),
        )

    def to_api(self) -> dict[str, Any]:
        """The same deployment in DeployHQ's shape, so one parser serves stored copies too."""

        def revision(rev: Revision | None) -> dict[str, str] | None:
            if rev is None:
                return None
            return {"ref": rev.ref, "message": rev.message, "author": rev.author}

        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "identifier": self.identifier,
            "status": self.status,
            "branch": self.branch,
            "deployer": self.deployer,
            "project": {"name": self.project_name, "permalink": self.project_permalink},
            "start_revision": revision(self.start_revision),
            "end_revision": revision(self.end_revision),
            "servers": [
                {
                    "name": name,
                    **({"identifier": ident} if ident else {}),
                    **({"server_group_identifier": group} if group else {}),
                }
                for name, ident, group in zip(
                    self.servers,
                    self.server_ids + ("",) * (len(self.servers) - len(self.server_ids)),
                    self.server_groups + ("",) * (len(self.servers) - len(self.server_groups)),
                    strict=False,
                )
            ],
            "timestamps": {
                "queued_at": iso(self.queued_at),
                "started_at": iso(self.started_at),
                "completed_at": iso(self.completed_at),
                "duration": self.duration,
            },
            "archived": self.archived,
            "config_files_deployment": self.config_files_only,
            **(
                {"steps": [self.failed_step.to_api()] if self.failed_step else []}
                if self.steps_read
                else {}
            ),
            **({"overview": self.overview} if self.overview else {}),
        }

    @property
    def server_keys(self) -> frozenset[str]:
        """The servers it ran on, by identifier where DeployHQ gave one, else by name."""
        return frozenset(self.server_ids or self.servers)

    @property
    def parent(self) -> str:
        """What it was deployed to, as DeployHQ's ``to=`` filter names it: its one server's
        identifier, or the group that all its servers share; "" when neither fits."""
        if len(self.server_ids) == 1 and len(self.servers) <= 1:
            return self.server_ids[0]
        groups = set(self.server_groups)
        if len(self.servers) > 1 and len(groups) == 1 and "" not in groups:
            return self.server_groups[0]
        return ""

    @property
    def is_preview(self) -> bool:
        """A preview (``preview_pending``, ``preview_ready``, ``preview_failed``) shows what a
        deployment would do without doing it: never one to act on, never one that acted."""
        return self.status.startswith("preview_")

    @property
    def short_id(self) -> str:
        return self.identifier[:8]

    @property
    def finished_at(self) -> datetime | None:
        return self.completed_at or self.started_at or self.queued_at

    @property
    def progress(self) -> tuple[float, int]:
        """Orders the events of one deployment: a later one compares greater.

        A retry re-queues the same deployment, so the latest timestamp it carries says which
        run an event belongs to, and the status says how far that run had got.
        """
        moments = [m for m in (self.queued_at, self.started_at, self.completed_at) if m]
        latest = max(moments).timestamp() if moments else 0.0
        return latest, _STATUS_RANK.get(self.status, 1)

    @property
    def run_key(self) -> str:
        """Names this run of the deployment: a retry that fails again is a new run.

        DeployHQ retries reuse the deployment's identifier, so the moment it finished tells one
        failure from the next.
        """
        moment = self.finished_at
        return f"{self.identifier}:{int(moment.timestamp()) if moment else 0}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value).strip()[:_MAX_FIELD]
    return ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    # DeployHQ gives the account's offset ("…T12:00:30.000+01:00"); kept in UTC from here on.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _revision(value: Any) -> Revision | None:
    if not isinstance(value, Mapping):
        return None
    ref = _text(value.get("ref"))
    if not ref:
        return None
    return Revision(
        ref=ref,
        message=_text(value.get("short_message")) or _text(value.get("message")),
        author=_text(value.get("author")),
    )


@dataclass(frozen=True)
class Step:
    """One step of a deployment, as DeployHQ lists them."""

    identifier: str
    description: str
    status: str
    server: str = ""
    has_logs: bool = True  # DeployHQ says "logs": false for a step that kept none

    @classmethod
    def from_api(cls, data: Any, servers: Mapping[str, str] | None = None) -> Step | None:
        """``servers`` names the deployment's servers by id: DeployHQ gives a step's server as
        the integer ``id`` of one of them."""
        if not isinstance(data, Mapping):
            return None
        identifier = _text(data.get("identifier"))
        if not is_identifier(identifier):
            return None
        server = data.get("server")
        if isinstance(server, Mapping):
            server_name = _text(server.get("name"))
        else:
            server_name = (servers or {}).get(_text(server), "") or _text(server)
        return cls(
            identifier=identifier,
            description=_text(data.get("description")) or _text(data.get("step")) or "a step",
            status=_text(data.get("status")).lower(),
            server=server_name,
            has_logs=data.get("logs") is not False,
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "description": self.description,
            "status": self.status,
            "server": {"name": self.server},
            "logs": self.has_logs,
        }


def failing_step(data: Any) -> Step | None:
    """The step that failed, from a deployment object with ``steps``."""
    record = _mapping(data)
    steps = record.get("steps")
    listed = record.get("servers")
    servers = {
        _text(s.get("id")): _text(s.get("name"))
        for s in (listed if isinstance(listed, list) else [])
        if isinstance(s, Mapping) and _text(s.get("id"))
    }
    parsed = [s for s in (Step.from_api(d, servers) for d in _list(steps)) if s]
    return next((s for s in parsed if s.status == FAILED), None)


def log_lines(data: Any) -> list[str]:
    """A step's log as lines of text, oldest to newest (DeployHQ lists the newest first, ids
    descending): each entry's message, then its detail's lines; an error entry is marked."""
    entries = [_mapping(e) for e in _list(data)]
    ids = [e.get("id") for e in entries]
    if all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        entries.sort(key=lambda e: int(e["id"]))
    else:
        entries.reverse()
    lines: list[str] = []
    for entry in entries:
        mark = "✖ " if _text(entry.get("type")).lower() == "error" else ""
        for field in ("message", "detail"):
            value = entry.get(field)
            if isinstance(value, str):
                found = [line.rstrip() for line in value.splitlines() if line.strip()]
                if found and field == "message":
                    found[0] = mark + found[0]
                lines.extend(found)
    return lines


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
