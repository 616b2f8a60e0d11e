"""Work that runs after Slack has had its answer, on one thread pool per worker process.

Bolt's lazy listeners would do this too, but they deep-copy each request (and parse its body
again) before running; measured, that copy was 40% of a click's time to acknowledge.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

"""Where ``create_app`` leaves the worker's pools, for gunicorn's ``worker_exit`` to drain."""

# Acks first: work started while this process is answering requests is held until they are
# answered, and never longer than this. Slack gives a click 3 s; the work after an ack can wait a
# moment, and then no longer competes with a burst's acks for the interpreter. A held task takes
# no pool thread, so a steady stream of requests delays work but does not slow it.
ACKS_FIRST_SECONDS = 0.25
# Cards first: why a deployment failed is looked up once the cards waiting to be posted are (at
# most this long after), so a burst of failures reaches Slack before their explanations.
AFTER_SECONDS = 2.0


class Serving:
    """The requests this process is answering (counted by the gunicorn worker), and the work
    held until they are answered."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._count = 0
        self._held: deque[tuple[float, Callable[[], None]]] = deque()
        self._releaser: threading.Thread | None = None

    @contextmanager
    def request(self) -> Iterator[None]:
        with self._lock:
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1
                ready = self._take(everything=not self._count)
            _start(ready)

    def after_answers(self, start: Callable[[], None]) -> None:
        """``start()`` now if no request is being answered, else once none is (or at most
        ``ACKS_FIRST_SECONDS`` from now)."""
        with self._lock:
            if self._count:
                self._held.append((time.monotonic() + ACKS_FIRST_SECONDS, start))
                if self._releaser is None or not self._releaser.is_alive():
                    self._releaser = threading.Thread(
                        target=self._release_late, name="acks-first", daemon=True
                    )
                    self._releaser.start()
                return
        start()

    def release(self) -> None:
        """Start everything held now (a worker that is stopping)."""
        with self._lock:
            ready = self._take(everything=True)
        _start(ready)

    def _release_late(self) -> None:
        while True:
            with self._lock:
                if not self._held:
                    self._releaser = None
                    return
                wait = self._held[0][0] - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                ready = self._take(everything=False)
            _start(ready)

    def _take(self, *, everything: bool) -> list[Callable[[], None]]:
        now = time.monotonic()
        ready = []
        while self._held and (everything or self._held[0][0] <= now):
            ready.append(self._held.popleft()[1])
        return ready


def _start(ready: list[Callable[[], None]]) -> None:
    for start in ready:
        start()


class PoolClosed(RuntimeError):
    """Work was handed to a pool of a worker that is stopping."""


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
    def __init__(
        self,
        max_workers: int = 16,
        name: str = "after-ack",
        *,
        after: Background | None = None,
        serving: Serving | None = None,
    ) -> None:
        """``after``: a pool whose work comes first; each task here waits (at most
        AFTER_SECONDS) until that pool has nothing pending. ``serving``: the requests whose
        answers its work waits for (acks first); its own when not given."""
        self.name = name
        self._after = after
        self.serving = serving or Serving()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending = 0
        self._scheduled = 0
        self._closed = False

    @property
    def pending(self) -> int:
        """Tasks queued or running."""
        return self._pending

    @property
    def scheduled(self) -> int:
        """Tasks whose ``later`` has not come yet."""
        return self._scheduled

    def run(self, what: str, work: Callable[..., object], *args: Any) -> None:
        """Start ``work(*args)`` once this process's requests are answered (``serving``); if
        it raises, the traceback is logged under ``what``. ``RuntimeError`` once closed."""
        if self._closed:
            raise PoolClosed(f"the {self.name} pool has closed")
        with self._lock:
            self._pending += 1
        # The work runs in a copy of this context: it keeps the request id of what started it.
        context = contextvars.copy_context()

        def start() -> None:
            try:
                self._pool.submit(context.run, self._guarded, what, work, args)
            except RuntimeError:  # closed while it was held: the worker is stopping
                with self._lock:
                    self._pending -= 1
                log.info("%s not started: shutting down", what)

        self.serving.after_answers(start)

    def later(self, delay: float, what: str, work: Callable[..., object], *args: Any) -> None:
        """``run`` after ``delay`` seconds (dropped if the pool has closed by then)."""

        def start() -> None:
            try:
                self.run(what, work, *args)
            except RuntimeError:
                log.info("%s not started: shutting down", what)
            finally:
                with self._lock:
                    self._scheduled -= 1

        with self._lock:
            self._scheduled += 1
        timer = threading.Timer(delay, contextvars.copy_context().run, (start,))
        timer.daemon = True
        timer.start()

    def wait_idle(self, timeout: float) -> None:
        """Return once nothing is pending here, or after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, *, wait: bool = True) -> None:
        """Refuse new work and wait for what is queued (a stopping worker); without ``wait``,
        drop what has not started."""
        if not wait:
            self._closed = True
            self._pool.shutdown(wait=False, cancel_futures=True)
            return
        self.serving.release()  # what waited for acks starts now
        self._closed = True
        waiting = self._pending
        if waiting:
            log.info("finishing %d %s task(s) before exiting", waiting, self.name)
        self._pool.shutdown(wait=True)
        if waiting:
            log.info("%s tasks finished", self.name)

    def _guarded(self, what: str, work: Callable[..., object], args: tuple[Any, ...]) -> None:
        try:
            if self._after is not None:
                self._after.wait_idle(AFTER_SECONDS)
            work(*args)
        except PoolClosed as closed:
            # The worker is stopping, and what this work would hand on has nowhere to go: its
            # record stays unsettled, and the reconciler finishes it after the restart.
            log.info("%s stopped short: %s", what, closed)
        except Exception:
            log.exception("%s failed", what)
        finally:
            with self._lock:
                self._pending -= 1


@dataclass(frozen=True)
class Pools:
    """One bounded pool per kind of work, so one slow service cannot starve the others."""

    actions: Background  # every action and /deployhq's: DeployHQ calls, each within its deadline
    commands: Background  # the other /deployhq commands (status, failed)
    slack: Background  # card posts and updates: may wait out Slack's Retry-After
    lookups: Background  # why a deployment failed: reads DeployHQ may be slow to answer
    serving: Serving  # the requests this process is answering (the gunicorn worker counts them)

    @classmethod
    def create(cls) -> Pools:
        serving = Serving()
        slack = Background(8, "slack", serving=serving)
        return cls(
            actions=Background(32, "actions", serving=serving),
            commands=Background(8, "commands", serving=serving),
            slack=slack,
            # cards first, then why they failed
            lookups=Background(2, "lookups", after=slack, serving=serving),
            serving=serving,
        )

    def all(self) -> tuple[Background, ...]:
        return (self.actions, self.commands, self.slack, self.lookups)

    @property
    def pending(self) -> int:
        """Tasks queued or running in any pool."""
        return sum(pool.pending for pool in self.all())

    @property
    def unfinished(self) -> int:
        """Tasks queued, running, or scheduled for later, in any pool."""
        return sum(pool.pending + pool.scheduled for pool in self.all())

    def close(self, *, wait: bool = True) -> None:
        for pool in self.all():
            pool.close(wait=wait)
