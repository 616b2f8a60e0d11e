"""Work that runs after Slack has had its answer, on one thread pool per worker process.

Bolt's lazy listeners would do this too, but they deep-copy each request (and parse its body
again) before running; measured, that copy was 40% of a click's time to acknowledge.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

EXTENSION = "deployhq-bot.background"
"""Where ``create_app`` leaves the worker's pools, for gunicorn's ``worker_exit`` to drain."""


class Runner(Protocol):
    """Where work runs: a pool of this process (``Background``), or this thread (``Inline``)."""

    def run(self, what: str, work: Callable[..., object], *args: Any) -> None: ...
    def later(self, delay: float, what: str, work: Callable[..., object], *args: Any) -> None: ...


class Inline:
    """Work run at once, in the calling thread: for a one-shot command, which has no pools and
    is gone before anything scheduled ``later`` could run, so that is dropped."""

    def run(self, what: str, work: Callable[..., object], *args: Any) -> None:
        work(*args)

    def later(self, delay: float, what: str, work: Callable[..., object], *args: Any) -> None:
        log.info("%s not scheduled: this command ends now", what)


class Background:
    def __init__(self, max_workers: int = 16, name: str = "after-ack") -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Tasks queued or running."""
        return self._pending

    def run(self, what: str, work: Callable[..., object], *args: Any) -> None:
        """Start ``work(*args)``; if it raises, the traceback is logged under ``what``."""
        with self._lock:
            self._pending += 1
        try:
            # The work runs in a copy of this context: it keeps the request id of what started it.
            self._pool.submit(contextvars.copy_context().run, self._guarded, what, work, args)
        except RuntimeError:  # the pool has closed: the worker is stopping
            with self._lock:
                self._pending -= 1
            raise

    def later(self, delay: float, what: str, work: Callable[..., object], *args: Any) -> None:
        """``run`` after ``delay`` seconds (dropped if the pool has closed by then)."""

        def start() -> None:
            try:
                self.run(what, work, *args)
            except RuntimeError:
                log.info("%s not started: shutting down", what)

        timer = threading.Timer(delay, contextvars.copy_context().run, (start,))
        timer.daemon = True
        timer.start()

    def close(self, *, wait: bool = True) -> None:
        """Refuse new work and wait for what is queued (a stopping worker); without ``wait``,
        drop what has not started."""
        if not wait:
            self._pool.shutdown(wait=False, cancel_futures=True)
            return
        waiting = self._pending
        if waiting:
            log.info("finishing %d %s task(s) before exiting", waiting, self.name)
        self._pool.shutdown(wait=True)
        if waiting:
            log.info("%s tasks finished", self.name)

    def _guarded(self, what: str, work: Callable[..., object], args: tuple[Any, ...]) -> None:
        try:
            work(*args)
        except Exception:
            log.exception("%s failed", what)
        finally:
            with self._lock:
                self._pending -= 1


@dataclass(frozen=True)
class Pools:
    """One bounded pool per kind of work, so one slow service cannot starve the others."""

    retries: (
        Background  # Retry clicks and /deployhq retry: DeployHQ calls, each within its deadline
    )
    commands: Background  # the other /deployhq commands (status, failed)
    slack: Background  # card posts and updates: may wait out Slack's Retry-After
    lookups: Background  # why a deployment failed: reads DeployHQ may be slow to answer

    @classmethod
    def create(cls) -> Pools:
        return cls(
            retries=Background(32, "retries"),
            commands=Background(8, "commands"),
            slack=Background(8, "slack"),
            lookups=Background(2, "lookups"),
        )

    def all(self) -> tuple[Background, ...]:
        return (self.retries, self.commands, self.slack, self.lookups)

    @property
    def pending(self) -> int:
        return sum(pool.pending for pool in self.all())

    def close(self, *, wait: bool = True) -> None:
        for pool in self.all():
            pool.close(wait=wait)
