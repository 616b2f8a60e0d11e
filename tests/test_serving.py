"""Slow clients cannot starve the acks: the Procfile's server bounds the time a connection may
take to send its request, so a crowd trickling their headers leaves Slack's requests answered."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.fakes import FakeSlack
from tests.support.gunicorn import Gunicorn
from tests.support.redis_server import RedisServer
from tests.support.signed import command_body, slack_headers

TRICKLERS = 40  # twice the threads of 2 workers x 10
CLICKS = 8


@pytest.fixture
def server(env: dict[str, str], start_redis: Callable[..., RedisServer]) -> Iterator[Gunicorn]:
    server = Gunicorn({**env, "REDIS_URL": start_redis().url}, workers=2)
    server.wait_ready()
    yield server
    server.stop()


def trickle(port: int, stop: threading.Event, closed: list[float]) -> None:
    """Send a request head a byte every 2 s, as a slowloris client does, until cut off."""
    head = b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nX-Padding: " + b"a" * 200
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for byte in head:
            if stop.is_set():
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break  # the server hung up
            if stop.wait(2):
                return
        closed.append(time.monotonic() - started)


def test_clients_trickling_their_headers_do_not_starve_slacks_requests(
    server: Gunicorn, fake_slack: FakeSlack
):
    stop, closed = threading.Event(), []
    tricklers = [
        threading.Thread(target=trickle, args=(server.port, stop, closed), daemon=True)
        for _ in range(TRICKLERS)
    ]
    for thread in tricklers:
        thread.start()
    time.sleep(3)  # every trickler has sent its first byte and taken a thread

    def ask(n: int) -> tuple[int, float, str]:
        body = command_body("help", response_url=fake_slack.response_url(f"help-{n}"))
        started = time.monotonic()
        answer = requests.post(
            server.url + "/slack/events", data=body, headers=slack_headers(body), timeout=30
        )
        return answer.status_code, time.monotonic() - started, answer.text

    try:
        with ThreadPoolExecutor(CLICKS) as pool:
            answers = list(pool.map(ask, range(CLICKS)))
    finally:
        stop.set()

    assert [status for status, _, _ in answers] == [200] * CLICKS
    assert all("/deployhq retry" in text for _, _, text in answers)
    # Slack gives up after 3 s; a trickler is cut off 5 s after its first byte.
    slowest = max(seconds for _, seconds, _ in answers)
    assert slowest < 3.0, f"slowest answer {slowest:.2f} s"


def test_a_trickling_client_is_cut_off_and_a_prompt_one_is_served_on_the_same_worker(
    server: Gunicorn,
):
    stop, closed = threading.Event(), []
    thread = threading.Thread(target=trickle, args=(server.port, stop, closed), daemon=True)
    thread.start()
    thread.join(timeout=20)
    stop.set()
    assert closed, "the trickling client was never cut off"
    assert closed[0] < 14, f"cut off after {closed[0]:.1f} s"
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
