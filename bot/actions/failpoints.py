"""Named points between the steps of an action where a test can have this process killed.

Proving "one action per failure, whatever crashes" takes a SIGKILL between every two steps. A
test starts the bot with ``BOT_FAILPOINT`` naming a point (and ``BOT_FAILPOINT_DIR`` a folder):
the first process to reach it, across every process sharing that folder, kills itself there
with SIGKILL, as a PaaS or the kernel would; the workers started after it pass it by. Unset (as
everywhere but in tests), ``reach`` does nothing. Read from the environment here, at import,
because it is a test's switch and no setting of the bot's.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

_POINT = os.environ.get("BOT_FAILPOINT", "")
_FOLDER = Path(os.environ.get("BOT_FAILPOINT_DIR") or tempfile.gettempdir())


def reach(name: str) -> None:
    """Die here, once, if a test asked for it."""
    if not _POINT or name != _POINT:
        return
    try:
        os.close(os.open(_FOLDER / f"failpoint-{name}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return  # it fired already, in this process's predecessor
    os.kill(os.getpid(), signal.SIGKILL)
