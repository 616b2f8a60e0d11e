"""Time moved on for a store instead of slept through, for each backend.

The in-process store reads the clock it is given. Redis keeps its own time, so for Redis the
clock moves every key's expiry that much nearer (and drops a key whose time has come), which
is what that much time passing does to it.
"""

from __future__ import annotations

import redis


class Clock:
    """The clock an in-process store reads: it moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RedisClock:
    """Time passing for one Redis database: every expiry there comes ``seconds`` nearer."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def advance(self, seconds: float) -> None:
        gone = int(seconds * 1000)
        for key in self.client.scan_iter():
            left = int(self.client.pttl(key))
            if left < 0:  # no expiry, or already gone
                continue
            if left <= gone:
                self.client.delete(key)
            else:
                self.client.pexpire(key, left - gone)
