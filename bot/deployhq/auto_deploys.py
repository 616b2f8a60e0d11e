"""DeployHQ's automatic deployments and its insights, parsed defensively from its JSON.

``GET /projects/<p>/auto_deployments`` lists the deployables (servers and server groups), each
with ``auto_deploy`` on or off; ``POST`` sets them and answers with the list, leaving out (and
reporting) identifiers it does not know. ``GET /projects/<p>/insights?period=30`` gives, per
server, its latest status, reliability and deploys per week over the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Deployable:
    """A server or server group, as DeployHQ's automatic deployments list it."""

    identifier: str
    name: str
    kind: str  # DeployHQ's "type": a server or a server group
    auto_deploy: bool
    branch: str = ""  # its preferred branch: what a push to deploys by itself


def deployables(data: Any) -> list[Deployable]:
    """The deployables in an answer; ``ValueError`` when it holds no list of them."""
    listed = data.get("deployables") if isinstance(data, dict) else None
    if not isinstance(listed, list):
        raise ValueError("no deployables listed")
    found = []
    for item in listed:
        if not isinstance(item, dict) or not isinstance(item.get("identifier"), str):
            continue
        found.append(
            Deployable(
                identifier=item["identifier"],
                name=_text(item.get("name")) or item["identifier"],
                kind=_text(item.get("type")),
                auto_deploy=item.get("auto_deploy") is True,
                branch=_text(item.get("preferred_branch")),
            )
        )
    return found


def skipped(data: Any) -> str:
    """What DeployHQ reported of identifiers it skipped, in its words ("" when nothing)."""
    if not isinstance(data, dict):
        return ""
    for key in ("skipped", "errors", "error", "message"):
        said = data.get(key)
        if isinstance(said, str) and said:
            return said
        if isinstance(said, list) and said:
            return "; ".join(str(s) for s in said[:5])
    return ""


@dataclass(frozen=True)
class ServerFigures:
    """One server's (or group's) figures over the period."""

    identifier: str
    name: str
    latest_status: str
    reliability: float | None  # per cent of deployments that succeeded
    deploys_per_week: float | None
    total: int


def insights(data: Any) -> list[ServerFigures]:
    """The per-server figures of an insights answer; ``ValueError`` when it has none."""
    listed = data.get("servers") if isinstance(data, dict) else None
    if not isinstance(listed, list):
        raise ValueError("no servers in the insights")
    return [
        ServerFigures(
            identifier=_text(item.get("identifier")),
            name=_text(item.get("name")) or _text(item.get("identifier")),
            latest_status=_text(item.get("latest_status")),
            reliability=_number(item.get("reliability")),
            deploys_per_week=_number(item.get("deploys_per_week")),
            total=int(_number(item.get("total")) or 0),
        )
        for item in listed
        if isinstance(item, dict)
    ]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None
