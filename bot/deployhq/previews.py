"""A preview deployment as DeployHQ reports it: its status (``preview_pending``, then
``preview_ready`` or ``preview_failed``) and, once ready, the files it would change and remove
on each server (``files``: server identifier → ``{"changed": [...], "removed": [...]}``, whose
items the description leaves untyped: a path, or an object naming one)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

READY, FAILED, PENDING = "preview_ready", "preview_failed", "preview_pending"
MAX_PATHS = 1000  # per server and kind: enough to count, never an unbounded list
_PATH_KEYS = ("path", "file", "name", "filename")


@dataclass(frozen=True)
class ServerFiles:
    server: str  # the server's identifier, as DeployHQ keys ``files``
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preview:
    identifier: str
    status: str
    files: tuple[ServerFiles, ...] = ()
    summary: str = ""  # DeployHQ's ``log_summary``, when it gives one

    @property
    def finished(self) -> bool:
        return self.status in (READY, FAILED)

    @classmethod
    def from_api(cls, data: Any) -> Preview:
        """``ValueError`` when the answer names no preview."""
        if not isinstance(data, Mapping) or not isinstance(data.get("identifier"), str):
            raise ValueError("the answer names no preview")
        status = data.get("status")
        files = data.get("files")
        servers = files.items() if isinstance(files, Mapping) else ()
        summary = data.get("log_summary")
        return cls(
            data["identifier"][:64],
            status.strip().lower()[:50] if isinstance(status, str) else "",
            tuple(
                ServerFiles(str(server)[:64], _paths(kinds, "changed"), _paths(kinds, "removed"))
                for server, kinds in servers
                if isinstance(kinds, Mapping)
            ),
            summary.strip()[:1000] if isinstance(summary, str) else "",
        )


def _paths(kinds: Mapping[str, Any], kind: str) -> tuple[str, ...]:
    listed = kinds.get(kind)
    found = []
    for item in listed[:MAX_PATHS] if isinstance(listed, list) else []:
        if isinstance(item, Mapping):
            item = next((item[k] for k in _PATH_KEYS if isinstance(item.get(k), str)), None)
        if isinstance(item, str) and item.strip():
            found.append(item.strip()[:500])
    return tuple(found)
