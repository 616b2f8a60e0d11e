"""The bot started exactly as the Procfile says, in a process group a test can stop or wound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def procfile_command() -> str:
    (line,) = [x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:")]
    return line.removeprefix("web:").strip()


def path_with_venv() -> str:
    """The PATH a PaaS gives the app: the installed packages' scripts (gunicorn) first."""
    return f"{Path(sys.executable).parent}:{os.environ['PATH']}"


BOT_APP = "'bot.web.factory:create_app()'"


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, from /proc/<n>/stat (field 4 is the parent)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        # The command name (field 2) may hold spaces and parentheses: split after its last ")".
        fields = stat.rpartition(")")[2].split()
        if fields and fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


class Gunicorn:
    """``app`` swaps the Procfile's WSGI app for another, keeping every other setting."""

    def __init__(self, env: dict[str, str], *, workers: int = 2, app: str = BOT_APP) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        process_env = {
            "PATH": path_with_venv(),
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            **env,
        }
        # A file, not a pipe: an unread pipe fills up and blocks the workers' access log.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; stop() closes it
        self.process = subprocess.Popen(
            ["bash", "-c", "exec " + procfile_command().replace(BOT_APP, app)],
            cwd=ROOT,
            env=process_env,
            start_new_session=True,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.output = ""

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass  # not listening yet, or a worker still booting
            if self.process.poll() is not None:
                raise AssertionError(self.stop())
            if time.monotonic() > deadline:
                raise AssertionError("gunicorn did not start:\n" + self.stop())
            time.sleep(0.05)

    def workers(self) -> list[int]:
        """The master's live children, read from /proc (a bare machine may lack procps)."""
        return children(self.process.pid)

    def wait_workers(self, count: int, timeout: float = 20) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(found := self.workers()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} workers are running")
            time.sleep(0.05)
        return found

    def stop(self) -> str:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)
        self.log.seek(0)
        self.output = self.log.read().decode(errors="replace")
        self.log.close()
        return self.output


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (``/proc/<pid>/stat``)."""
    # The command name (field 2) is in parentheses and may hold spaces: count from after it.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
