"""Named points between the steps of an action where a test can have this process killed.

Proving "one action per failure, whatever crashes" takes a SIGKILL between every two steps. A
test starts the bot with ``BOT_FAILPOINT`` naming a point (and ``BOT_FAILPOINT_DIR`` a folder),
which the settings read and ``arm`` sets when the bot is built: the first process to reach it,
across every process sharing that folder, kills itself there with SIGKILL, as a PaaS or the
kernel would; the workers started after it pass it by. Unarmed (as everywhere but in tests),
``reach`` does nothing.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

_armed: dict[str, str] = {}


def arm(point: str, folder: str = "") -> None:
    """Have this process die at ``point`` ("" for none), once across those sharing ``folder``."""
    _armed.clear()
    if point:
        _armed.update(point=point, folder=folder or tempfile.gettempdir())


def reach(name: str) -> None:
    """Die here, once, if a test asked for it."""
    if not _armed or name != _armed["point"]:
        return
    try:
        marker = Path(_armed["folder"]) / f"failpoint-{name}"
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return  # it fired already, in this process's predecessor
    os.kill(os.getpid(), signal.SIGKILL)
