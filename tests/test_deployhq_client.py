"""The DeployHQ client against a fake DeployHQ over HTTP: answers, errors, timeouts."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from bot.deployhq.client import DeployHQ, DeployHQError
from bot.deployhq.deployment import Deployment
from bot.deployhq.history import last_good
from bot.store.kv import RedisKeyValue, open_redis
from bot.store.shared import Store
from tests.support.fakes import FakeDeployHQ, Reply, deployment_json
from tests.support.redis_server import free_port

DEPLOYMENT = "6bd5cdc4-d652-92e8-322f-287929091f03"


@pytest.fixture
def client(fake_deployhq: FakeDeployHQ) -> DeployHQ:
    return DeployHQ(fake_deployhq.url, "ops@example.com", "secret-key", timeout=(1.0, 0.5))


def failure(client: DeployHQ, project: str = "my-project") -> DeployHQError:
    with pytest.raises(DeployHQError) as raised:
        client.retry(project, DEPLOYMENT)
    return raised.value


def test_retry_returns_the_pending_deployment(client: DeployHQ, fake_deployhq: FakeDeployHQ):
    deployment = client.retry("my-project", DEPLOYMENT)
    assert (deployment.identifier, deployment.status) == (DEPLOYMENT, "pending")
    (call,) = fake_deployhq.retries()
    assert call.method == "POST"
    assert call.headers["Content-Type"] == "application/json"


def test_path_segments_are_encoded(client: DeployHQ, fake_deployhq: FakeDeployHQ):
    assert failure(client, "my project/x").status == 404
    assert fake_deployhq.calls[0].raw_uri == (
        f"/projects/my%20project%2Fx/deployments/{DEPLOYMENT}/retry"
    )


@pytest.mark.parametrize(
    ("reply", "status", "message"),
    [
        (
            Reply(422, {"error": "Archived deployments cannot be retried"}),
            422,
            "Archived deployments cannot be retried",
        ),
        (
            Reply(422, {"status": ["is not failed"], "archived": ["is true"]}),
            422,
            "status is not failed; archived is true",
        ),
        (Reply(401, {"status": 401, "error": "Access denied"}), 401, "Access denied"),
        (
            Reply(
                403,
                {
                    "message": "Your plan allows 1 server",
                    "upgrade_url": "https://acme.deployhq.com/billing",
                },
            ),
            403,
            "Your plan allows 1 server (upgrade: https://acme.deployhq.com/billing)",
        ),
        (
            Reply(422, {"errors": ["Branch is missing", "Server is busy"]}),
            422,
            "Branch is missing; Server is busy",
        ),
        (
            Reply(422, {"base": ["Cannot rollback to this deployment"]}),
            422,
            "Cannot rollback to this deployment",
        ),
        (Reply(422, {"end_revision": "is invalid"}), 422, "end_revision is invalid"),
        (Reply(502, raw=b"<html><body>Bad gateway</body></html>"), 502, "HTTP 502 BAD GATEWAY"),
        (Reply(500, raw=b""), 500, "HTTP 500 INTERNAL SERVER ERROR"),
    ],
    ids=["error", "fields", "auth", "plan-limit", "errors", "base", "field-text", "html", "empty"],
)
def test_errors_carry_status_and_deployhqs_message(client, fake_deployhq, reply, status, message):
    fake_deployhq.script("retry", reply)
    error = failure(client)
    assert (error.status, error.message) == (status, message)


def test_429_carries_retry_after(client: DeployHQ, fake_deployhq: FakeDeployHQ):
    fake_deployhq.script("retry", Reply(429, {"error": "Too many"}, {"Retry-After": "7"}))
    assert failure(client).retry_after == 7.0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_nothing_is_sent_until_it_has_passed(
    client: DeployHQ, fake_deployhq: FakeDeployHQ, status: int
):
    fake_deployhq.script("show", Reply(status, {"error": "Busy"}, {"Retry-After": "1"}))
    with pytest.raises(DeployHQError):
        client.deployment("my-project", DEPLOYMENT)
    with pytest.raises(DeployHQError) as raised:
        client.retry("my-project", DEPLOYMENT)  # within the second: not sent at all
    assert raised.value.kind == "busy" and not raised.value.may_have_happened
    assert 0 < (raised.value.retry_after or 0) <= 1
    assert len(fake_deployhq.calls) == 1
    time.sleep(1.05)
    assert client.deployment("my-project", DEPLOYMENT).identifier == DEPLOYMENT
    assert len(fake_deployhq.calls) == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("86400", 300.0), ("soon", None), ("nan", None)],
)
def test_retry_after_as_a_date_or_out_of_bounds(client, fake_deployhq, header, expected):
    fake_deployhq.script("retry", Reply(429, {"error": "Too many"}, {"Retry-After": header}))
    assert failure(client).retry_after == expected


def test_a_read_timeout_says_the_retry_may_have_happened(client, fake_deployhq):
    fake_deployhq.script("retry", Reply(200, None, delay=1.5))
    error = failure(client)
    assert (error.status, error.kind, error.may_have_happened) == (None, "timeout", True)


def test_nothing_listening_is_a_connect_error():
    client = DeployHQ(f"http://127.0.0.1:{free_port()}", "u", "k", timeout=(0.5, 0.5))
    error = failure(client)
    assert (error.kind, error.may_have_happened) == ("connect", False)
    assert "k" not in error.message.split()


def test_an_answer_that_is_not_a_deployment_is_an_error(client, fake_deployhq):
    fake_deployhq.script("retry", Reply(200, raw=b"<html>maintenance</html>"))
    assert failure(client).kind == "invalid"


def test_a_trickling_answer_ends_at_the_deadline_though_no_read_times_out(fake_deployhq):
    client = DeployHQ(fake_deployhq.url, "u", "k", timeout=(1.0, 5.0), deadline=1.0)
    fake_deployhq.script("retry", Reply(200, None, trickle=0.3))  # minutes in all
    started = time.monotonic()
    error = failure(client)
    took = time.monotonic() - started
    assert (error.kind, error.may_have_happened) == ("timeout", True)
    assert 0.9 < took < 1.5


def test_a_connection_dropped_after_the_request_left_may_have_retried():
    """A server that reads the request and hangs up: DeployHQ may have acted on it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    client = DeployHQ(f"http://127.0.0.1:{listener.getsockname()[1]}", "u", "k", deadline=5)
    error = failure(client)
    listener.close()
    assert (error.kind, error.may_have_happened) == ("dropped", True)


def test_an_answer_over_two_megabytes_is_refused_without_being_held_whole(
    client: DeployHQ, fake_deployhq: FakeDeployHQ
):
    # DeployHQ answers a page of entries; an entry's detail can be long (~3 MB in all here).
    huge = [{"id": n, "message": "m", "detail": "x" * 100_000, "type": "info"} for n in range(30)]
    fake_deployhq.deployments[DEPLOYMENT] = {
        "identifier": DEPLOYMENT,
        "status": "failed",
        "project": {"permalink": "my-project"},
        "steps": [{"identifier": "step-1", "description": "Build", "status": "failed"}],
    }
    fake_deployhq.logs["step-1"] = huge
    with pytest.raises(DeployHQError) as raised:
        client.failure_log("my-project", DEPLOYMENT)
    assert raised.value.kind == "too-large" and "larger than 2 MB" in raised.value.message
    # An answer under the bound is read as before.
    fake_deployhq.logs["step-1"] = huge[:10]
    found = client.failure_log("my-project", DEPLOYMENT)
    assert found is not None and len(found[1]) == 20


def test_the_filtered_list_is_read_a_page_at_a_time_and_never_past_five_pages(
    client: DeployHQ, fake_deployhq: FakeDeployHQ
):
    failed = Deployment.from_api(deployment_json(DEPLOYMENT, "my-project"))
    fake_deployhq.history[:] = [  # 400 failures on its server, newer than it
        deployment_json(f"{n:08d}-0000-4000-8000-000000000000", "my-project") for n in range(400)
    ]
    assert failed.parent == "7563d091"
    found = last_good(client.history("my-project", to=failed.parent), failed)
    assert found is None  # 400 failures on its server: none good within the bound
    pages = [c.raw_uri for c in fake_deployhq.calls]
    assert len(pages) == 5 and all("to=7563d091" in p and "per_page=50" in p for p in pages)

    fake_deployhq.calls.clear()
    fake_deployhq.history[:] = fake_deployhq.history[:60]
    assert len(list(client.history("my-project", to=failed.parent))) == 60
    assert len(fake_deployhq.calls) == 2  # pagination says two pages: not a third


def test_a_bare_array_of_deployments_is_read_too(client: DeployHQ, fake_deployhq: FakeDeployHQ):
    fake_deployhq.script("index", Reply(200, [deployment_json(DEPLOYMENT, "my-project")]))
    assert [d.identifier for d in client.history("my-project")] == [DEPLOYMENT]
    assert len(fake_deployhq.calls) == 1  # a short page ends the list


def test_what_a_deployment_went_to_is_its_server_or_the_group_all_its_servers_share():
    def parent(*servers: dict[str, str]) -> str:
        data = {**deployment_json(DEPLOYMENT, "p"), "servers": list(servers)}
        return Deployment.from_api(data).parent

    web = {"server_group_identifier": "g-web"}
    assert parent({"name": "A", "identifier": "a"}) == "a"
    assert parent({"name": "A", "identifier": "a", **web}) == "a"  # to the server, or the group
    assert (
        parent({"name": "A", "identifier": "a", **web}, {"name": "B", "identifier": "b", **web})
        == "g-web"
    )
    assert parent({"name": "A", "identifier": "a"}, {"name": "B", "identifier": "b"}) == ""
    assert parent({"name": "A", "identifier": "a", **web}, {"name": "B", "identifier": "b"}) == ""


def test_a_pause_deployhq_asks_for_is_kept_by_every_process(
    fake_deployhq: FakeDeployHQ, redis_url: str
):
    """Two clients on one Redis, as two worker processes: the pause one of them heard holds the
    other too, by Redis's clock."""
    shared = Store.on(RedisKeyValue(open_redis(redis_url))).pauses
    first, second = (
        DeployHQ(fake_deployhq.url, "u", "k", timeout=(1.0, 1.0), pauses=shared) for _ in range(2)
    )
    fake_deployhq.script("show", Reply(429, {"error": "Too many"}, {"Retry-After": "1"}))
    with pytest.raises(DeployHQError):
        first.deployment("my-project", DEPLOYMENT)
    with pytest.raises(DeployHQError) as raised:
        second.retry("my-project", DEPLOYMENT)
    assert raised.value.kind == "busy" and 0 < (raised.value.retry_after or 0) <= 1
    assert len(fake_deployhq.calls) == 1  # the second process sent nothing
    time.sleep(1.05)
    assert second.deployment("my-project", DEPLOYMENT).identifier == DEPLOYMENT


def test_automatic_deployments_and_insights_are_read_defensively(
    client: DeployHQ, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.record(deployment_json("d-1", "my-project"))
    listed = client.auto_deployments("my-project")
    assert [(d.identifier, d.name, d.auto_deploy, d.branch) for d in listed] == [
        ("7563d091", "Production Server", True, "main")
    ]
    assert client.set_auto_deploy("my-project", "7563d091", False) == ""
    assert client.auto_deployments("my-project")[0].auto_deploy is False
    skipped = client.set_auto_deploy("my-project", "no-such-server", False)
    assert skipped == "DeployHQ's answer left no-such-server out (skipped)"

    odd = {"deployables": [{"identifier": "s-1", "auto_deploy": "yes"}, "junk", {"name": "x"}]}
    fake_deployhq.script("auto_deployments", Reply(200, odd))
    (only,) = client.auto_deployments("my-project")
    assert (only.identifier, only.name, only.auto_deploy) == ("s-1", "s-1", False)  # not true
    fake_deployhq.script("auto_deployments", Reply(200, ["not", "an", "object"]))
    with pytest.raises(DeployHQError) as raised:
        client.auto_deployments("my-project")
    assert raised.value.kind == "invalid"

    figures = {"servers": [{"identifier": "s-1", "reliability": "97.5", "deploys_per_week": None}]}
    fake_deployhq.script("insights", Reply(200, figures))
    (server,) = client.insights("my-project")
    assert (server.reliability, server.deploys_per_week, server.total) == (97.5, None, 0)
    assert fake_deployhq.calls[-1].raw_uri.endswith("/insights?period=30")
