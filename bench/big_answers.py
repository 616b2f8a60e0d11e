"""What huge DeployHQ answers cost a worker: ``python -m bench.big_answers``.

A fake DeployHQ in a process of its own answers a failing step's log with about 30 MB of
entries; the bot's DeployHQ client asks for it three times, as three failures would. Prints
the client process's resident memory before and after: answers past the 2 MB bound are
refused as they stream in, never held whole.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time

from bot.deployhq.client import DeployHQ, DeployHQError

DEPLOYMENT = "6bd5cdc4-d652-92e8-322f-287929091f03"
ENTRIES = 300  # of about 100 kB each (a page of entries with long details)


def serve() -> None:
    from tests.support.fakes import FakeDeployHQ

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    fake = FakeDeployHQ().start()
    fake.log_page_size = ENTRIES
    fake.deployments[DEPLOYMENT] = {
        "identifier": DEPLOYMENT,
        "status": "failed",
        "project": {"permalink": "my-project"},
        "steps": [{"identifier": "step-1", "description": "Build", "status": "failed"}],
    }
    fake.logs["step-1"] = [
        {"id": n, "message": "m", "detail": "x" * 100_000, "type": "info"}
        for n in range(ENTRIES, 0, -1)
    ]
    print(fake.url, flush=True)
    time.sleep(600)


def rss_mb() -> int:
    with open("/proc/self/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0]) // 1024


def main() -> None:
    fake = subprocess.Popen(
        [sys.executable, "-m", "bench.big_answers", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert fake.stdout is not None
        client = DeployHQ(
            fake.stdout.readline().strip(), "u", "k", timeout=(2.0, 20.0), deadline=30
        )
        client.deployment("my-project", DEPLOYMENT)  # connections and imports warmed up
        before = rss_mb()
        for _ in range(3):
            started = time.monotonic()
            try:
                client.failure_log("my-project", DEPLOYMENT)
                said = "read whole"
            except DeployHQError as error:
                said = error.message
            print(f"a ~30 MB log answer: {said} ({time.monotonic() - started:.2f} s)")
        print(f"client RSS: {before} MB before, {rss_mb()} MB after three")
    finally:
        fake.kill()


if __name__ == "__main__":
    serve() if "--serve" in sys.argv else main()
