"""Fake Slack Web API and DeployHQ API: real HTTP servers on 127.0.0.1 that record each call."""

from __future__ import annotations

import copy
import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

from flask import Flask, Response, request
from werkzeug.serving import make_server

from tests.support.signed import at


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    data: Any = None  # the JSON or form body, parsed
    raw_uri: str = ""
    at: float = field(default_factory=time.monotonic)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # None: the default answer's body
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None
    trickle: float = 0.0  # seconds between the body's bytes: never idle long enough to time out
    drop: bool = False  # after the work and any delay, hang up without a word (no status line)
    after_work: bool = False  # an error answer (a proxy's 504, say) given after the work was done


def _trickle(body: bytes, pause: float) -> Iterator[bytes]:
    for i in range(len(body)):
        time.sleep(pause)
        yield body[i : i + 1]


class FakeServer:
    def __init__(self, name: str) -> None:
        self.app = Flask(name)
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)

        @self.app.get("/_calls")
        def calls() -> Response:
            """Every call so far, for a process that cannot read ``self.calls`` (the benchmark)."""
            with self._lock:
                listed = [[c.method, c.path] for c in self.calls]
            return Response(json.dumps(listed), content_type="application/json")

        @self.app.errorhandler(404)
        def unknown(_: Exception) -> Response:
            self._record()
            return Response(
                json.dumps({"error": "Not found"}), 404, content_type="application/json"
            )

        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def always(self, kind: str, reply: Reply) -> None:
        """Answer every call of ``kind`` with ``reply`` (after any scripted ones)."""
        with self._lock:
            self._defaults[kind] = reply

    def script(self, kind: str, *replies: Reply) -> None:
        """Answer the next calls of ``kind`` with ``replies``, in order; then the default."""
        with self._lock:
            self._scripts.setdefault(kind, []).extend(replies)

    def _record(self) -> Call:
        raw = request.get_data()
        data: Any = None
        if request.mimetype == "application/json":
            data = json.loads(raw or b"null")
        elif raw:
            data = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        elif request.args:
            data = request.args.to_dict()
        raw_uri = str(request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or "")
        call = Call(request.method, request.path, dict(request.headers), raw, data, raw_uri=raw_uri)
        with self._lock:
            self.calls.append(call)
        return call

    def _reply(
        self, kind: str, default: Callable[[], Reply], *, decide_first: bool = False
    ) -> Response:
        """The scripted reply, or ``default()``'s. A scripted 2xx without a body takes the
        default's; with ``decide_first`` that default (and what it does) comes before any delay."""
        with self._lock:
            queue = self._scripts.get(kind)
            reply = queue.pop(0) if queue else self._defaults.get(kind)
        if reply is None:
            reply = default()
        elif reply.after_work and decide_first:
            default()  # the work is done; the scripted error is what the client hears
        elif reply.body is None and reply.raw is None:  # scripted status/delay, default body
            if decide_first and reply.status < 300:
                reply = replace(reply, body=default().body, raw=None)
            else:
                reply = replace(reply, body=None, raw=None)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            connection = request.environ["werkzeug.socket"]
            connection.shutdown(socket.SHUT_RDWR)
            return Response(b"", 200)  # written into a closed socket: nobody hears it
        if reply.body is None and reply.raw is None:
            reply = replace(reply, body=default().body, raw=None, delay=0.0)
        body = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        content_type = "application/json" if reply.raw is None else "text/html"
        if reply.trickle:
            return Response(
                _trickle(body, reply.trickle),
                reply.status,
                headers=reply.headers,
                content_type=content_type,
            )
        return Response(body, reply.status, headers=reply.headers, content_type=content_type)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        """``predicate``'s first true answer, polled; its room is for a loaded machine (test
        files run at once on two cores), and a passing wait returns as soon as it is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.01)
        raise AssertionError(f"timed out waiting; calls so far: {[c.path for c in self.calls]}")


class FakeSlack(FakeServer):
    """Slack's Web API under ``/api/<method>`` and response URLs under ``/respond/<id>``."""

    def __init__(self) -> None:
        super().__init__("fake-slack")
        self._ts = itertools.count(1)
        self.deleted: set[str] = set()

        self.usergroups: dict[str, list[str]] = {}
        self._limits: dict[str, tuple[float, int]] = {}  # method -> (until, Retry-After)
        self.taken: list[dict[str, Any]] = []  # the posts Slack accepted (not those refused)
        # the bot token's
        self.scopes = {
            "chat:write",
            "commands",
            "usergroups:read",
            "channels:history",
            "groups:history",
            "users:read",
            "users:read.email",
        }
        # users.lookupByEmail: the members each address finds (as Slack keeps it, any case)
        self.emails: dict[str, str] = {}
        self.socket_url = ""  # where apps.connections.open sends Socket Mode clients
        self.app.post("/_rate_limit")(self._rate_limit_route)
        self.app.get("/_taken")(self._taken_route)

        @self.app.route("/api/<method>", methods=["GET", "POST"])
        def api(method: str) -> Response:
            call = self._record()
            until, retry_after = self._limits.get(method, (0.0, 0))
            if time.monotonic() < until:
                return Response(
                    json.dumps({"ok": False, "error": "ratelimited"}),
                    429,
                    headers={"Retry-After": str(retry_after)},
                    content_type="application/json",
                )
            # A post is taken before any scripted delay or hang-up: its answer can be lost after
            # Slack has it, as with the real service.
            return self._reply(
                method,
                lambda: self._default(method, call),
                decide_first=method == "chat.postMessage",
            )

        @self.app.post("/respond/<key>")
        def respond(key: str) -> Response:
            self._record()
            return self._reply("respond", lambda: Reply(200, {"ok": True}))

    def _default(self, method: str, call: Call) -> Reply:
        data = call.data or {}
        if method == "auth.test":
            body = {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1"}
            body |= {"user": "deployhq", "team": "Acme", "url": "https://acme.slack.com/"}
            return Reply(body=body, headers={"x-oauth-scopes": ",".join(sorted(self.scopes))})
        if method == "apps.connections.open":
            if self.socket_url:
                return Reply(body={"ok": True, "url": self.socket_url})
            return Reply(body={"ok": False, "error": "invalid_auth"})
        if method == "chat.postMessage":
            with self._lock:
                ts = f"1700000000.{next(self._ts):06d}"
                self.taken.append({**data, "ts": ts})
            return Reply(body={"ok": True, "channel": data.get("channel"), "ts": ts})
        if method == "conversations.history":
            # The channel's messages, newest first; metadata only when asked for.
            with_metadata = str(data.get("include_all_metadata")).lower() in ("true", "1")
            with self._lock:
                found = [
                    {
                        "type": "message",
                        "ts": m["ts"],
                        "text": m.get("text", ""),
                        **(
                            {"metadata": m["metadata"]} if with_metadata and "metadata" in m else {}
                        ),
                    }
                    for m in reversed(self.taken)
                    if m.get("channel") == data.get("channel") and "thread_ts" not in m
                ]
            return Reply(body={"ok": True, "messages": found[: int(data.get("limit", 100))]})
        if method == "usergroups.users.list":
            group = data.get("usergroup")
            if group not in self.usergroups:  # as Slack answers for a deleted group
                return Reply(body={"ok": False, "error": "no_such_subteam"})
            return Reply(body={"ok": True, "users": self.usergroups[group]})
        if method == "users.lookupByEmail":
            email = str(data.get("email") or "")
            found = next((e for e in self.emails if e.lower() == email.lower()), None)
            if found is None:
                return Reply(body={"ok": False, "error": "users_not_found"})
            user = {"id": self.emails[found], "name": "member", "profile": {"email": found}}
            return Reply(body={"ok": True, "user": user})
        if method == "chat.getPermalink":
            channel, ts = str(data.get("channel") or ""), str(data.get("message_ts") or "")
            link = f"https://acme.slack.com/archives/{channel}/p{ts.replace('.', '')}"
            return Reply(body={"ok": True, "channel": channel, "permalink": link})
        if method == "views.publish":
            view = data.get("view")
            view = json.loads(view) if isinstance(view, str) else view
            return Reply(body={"ok": True, "view": {"id": "V1", **(view or {})}})
        if method == "chat.update":
            if data.get("ts") in self.deleted:
                return Reply(body={"ok": False, "error": "message_not_found"})
            return Reply(body={"ok": True, "channel": data.get("channel"), "ts": data.get("ts")})
        return Reply(body={"ok": True})

    def rate_limit(self, method: str, seconds: float, retry_after: int) -> None:
        """Answer every call of ``method`` with 429 and ``Retry-After`` for ``seconds``."""
        self._limits[method] = (time.monotonic() + seconds, retry_after)

    def cards_taken(self, deployment: str) -> list[dict[str, Any]]:
        """The top-level messages Slack holds for one deployment's card (by its metadata)."""
        with self._lock:
            return [
                m
                for m in self.taken
                if "thread_ts" not in m
                and (m.get("metadata") or {}).get("event_payload", {}).get("deployment")
                == deployment
            ]

    def _taken_route(self) -> Response:
        """How many cards (not thread replies) Slack has accepted, for the benchmark."""
        with self._lock:
            cards = sum(1 for m in self.taken if "thread_ts" not in m)
        return Response(json.dumps(cards), content_type="application/json")

    def _rate_limit_route(self) -> Response:
        """``POST /_rate_limit`` {method, seconds, retry_after}: for a process that cannot call
        ``rate_limit`` (the benchmark)."""
        asked = request.get_json(force=True)
        self.rate_limit(str(asked["method"]), float(asked["seconds"]), int(asked["retry_after"]))
        return Response("{}", content_type="application/json")

    def api_calls(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c.data for c in self.calls if c.path == f"/api/{method}"]

    def responses(self, key: str | None = None) -> list[dict[str, Any]]:
        """What was sent to response URLs (to one of them, given its key)."""
        prefix = f"/respond/{key}" if key else "/respond/"
        with self._lock:
            return [c.data for c in self.calls if c.path.startswith(prefix)]

    def response_url(self, key: str = "r1") -> str:
        return f"{self.url}/respond/{key}"


def deployment_json(identifier: str, project: str, status: str = "failed") -> dict[str, Any]:
    """A deployment DeployHQ was never told of here: a failure of its own making, in DeployHQ's
    shape (its one step went well; tests that want a failed step say so)."""
    return {
        "identifier": identifier,
        "status": status,
        "branch": "main",
        "deployer": "Adam",
        "project": {"name": "My Project", "permalink": project},
        "start_revision": {"ref": "abc123def456"},
        "end_revision": {"ref": "def456abc789", "message": "Fix login"},
        "timestamps": {
            "queued_at": at(0),
            "started_at": at(2),
            "completed_at": at(70),
            "duration": 68,
        },
        "servers": [
            {"name": "Production Server", "identifier": "7563d091", "protocol_type": "ssh"}
        ],
        "steps": [
            {
                "step": "transfer",
                "stage": "deploy",
                "identifier": "step-1",
                "server": 1001,
                "description": "Checking access",
                "status": "completed",
                "logs": True,
                "total_items": 3,
                "completed_items": 1,
            }
        ],
    }


# DeployHQ's timestamps carry the account's offset and milliseconds.
ACCOUNT_ZONE = timezone(timedelta(hours=1))


def dhq_time(value: Any) -> Any:
    """A time as DeployHQ writes it: "2026-01-01T12:00:30.000+01:00"."""
    if not isinstance(value, str) or not value:
        return value
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ACCOUNT_ZONE).isoformat(timespec="milliseconds")


def parent_of(record: dict[str, Any]) -> str:
    """What a deployment went to, as DeployHQ's ``to=`` filter names it: its one server, or
    the group all its servers belong to."""
    servers = [s for s in record.get("servers") or [] if isinstance(s, dict)]
    if len(servers) == 1:
        return str(servers[0].get("identifier") or "")
    groups = {s.get("server_group_identifier") for s in servers}
    if len(servers) > 1 and len(groups) == 1 and None not in groups:
        return str(groups.pop())
    return ""


class FakeDeployHQ(FakeServer):
    """DeployHQ's API, with a memory: GET answers each deployment's current record (a failure of
    its own making for one it was never told of, 404 for one in ``missing``), and a retry it
    accepts re-queues the record at once, before any scripted delay: so a retry answered after
    the client gave up has still been processed, as with the real service."""

    def __init__(self) -> None:
        super().__init__("fake-deployhq")
        self.deployments: dict[str, dict[str, Any]] = {}  # what GET answers, by identifier
        self.missing: set[str] = set()  # deployments this account does not have
        self.history: list[dict[str, Any]] = []  # what the list answers, newest first
        self.logs: dict[str, list[dict[str, Any]]] = {}  # step logs, by step identifier
        # What DeployHQ did, apart from what it was asked: ("retry", id) and ("rollback", the
        # new deployment's id), in order.
        self.done: list[tuple[str, str]] = []
        self.clock = timedelta(0)  # how far DeployHQ's clock is ahead of ours
        self.log_page_size = 100  # step log entries in one answer
        self._server_ids: dict[str, int] = {}  # DeployHQ's integer server ids, as first seen
        self.latest: dict[str, str] = {}  # each branch's newest commit (else the fake's own)
        self.commits: dict[str, dict[str, str]] = {}  # commit_info's author, message, by ref
        self.group_names: dict[str, str] = {}  # server groups' names, by identifier
        # How to=<server> reads: "parent" lists only deployments made to that server itself;
        # "members" also lists a group's deployments under each of its servers. DeployHQ's
        # description does not say which it does.
        self.to_reading = "parent"
        # The status an aborted run reads as: DeployHQ's docs do not say cancelled or failed.
        self.abort_status = "cancelled"
        # The branches' recent commits, newest first, as recent_commits lists them (every
        # branch the same unless a test names one).
        self.commit_log: dict[str, list[dict[str, Any]]] = {}
        # DeployHQ's AI overview: None answers as an account with AI features off does.
        self.ai_overview: str | None = None
        # Previews: each one asked for (its identifier), how many reads it stays
        # preview_pending, what it ends as, and the files it lists once ready.
        self.previews: list[str] = []
        self.preview_reads = 1
        self.preview_outcome = "preview_ready"
        self.preview_files: dict[str, Any] | None = None
        self._preview_seen: dict[str, int] = {}

        # Automatic deployments: each server's and group's on or off (on unless a test says),
        # by identifier; the insights' figures, per server, over the period asked for.
        self.auto_deploy: dict[str, bool] = {}
        self.extra_deployables: list[dict[str, Any]] = []  # beyond the servers the records name
        self.insights_figures: dict[str, dict[str, Any]] = {}

        @self.app.get("/projects/<project>/auto_deployments")
        def auto_deployments(project: str) -> Response:
            self._record()
            with self._lock:
                body = {
                    "webhook_url": f"https://example.deployhq.com/deploy/{project}/to/abc123",
                    "deployables": self._deployables(),
                }
            return self._reply("auto_deployments", lambda: Reply(200, body))

        @self.app.post("/projects/<project>/auto_deployments")
        def set_auto_deployments(project: str) -> Response:
            # DeployHQ's description types the body as a hash; its CLI sends a list of
            # {"identifier", "auto_deploy"}. Both are taken; unknown identifiers are skipped.
            self._record()
            asked = _toggles((request.get_json(silent=True) or {}).get("deployables"))
            if not asked:
                refusal = {"error": "Deployables must be given"}
                return self._reply("set_auto_deployments", lambda: Reply(422, refusal))

            def apply() -> Reply:
                with self._lock:
                    known = {d["identifier"] for d in self._deployables()}
                    for identifier, on in asked:
                        if identifier in known and self.auto_deploy.get(identifier, True) != on:
                            self.auto_deploy[identifier] = on
                            self.done.append(
                                ("auto-deploy", f"{identifier}:{'on' if on else 'off'}")
                            )
                    listed = [d for d in self._deployables() if d["identifier"] in dict(asked)]
                return Reply(200, {"deployables": listed})

            return self._reply("set_auto_deployments", apply, decide_first=True)

        @self.app.get("/projects/<project>/insights")
        def insights(project: str) -> Response:
            self._record()
            period = request.args.get("period", "30")
            with self._lock:
                servers = [
                    {
                        "identifier": d["identifier"],
                        "name": d["name"],
                        "group": d["type"] == "server_group",
                        "latest_status": "failed",
                        "recent_deploys": [{"status": "failed", "duration": 68}],
                        "speed": 68,
                        "reliability": 92.5,
                        "deploys_per_week": 3.5,
                        "total": 15,
                        **self.insights_figures.get(d["identifier"], {}),
                    }
                    for d in self._deployables()
                ]
            body = {
                "period": int(period) if period.isdigit() else 30,
                "servers": servers,
                "summary": {
                    "total_deploys": {"value": 15, "delta": 12.5},
                    "success_rate": {"value": 92.5, "delta": -2.0},
                    "avg_duration": {"value": 68, "delta": 0.0},
                    "active_servers": {"value": len(servers), "delta": "0"},
                },
            }
            return self._reply("insights", lambda: Reply(200, body))

        @self.app.get("/projects/<project>/deployments/<deployment>/steps/<step>/logs")
        def logs(project: str, deployment: str, step: str) -> Response:
            # Newest first (ids descending), a page at a time; before=<id> pages older ones.
            self._record()
            entries = sorted(self.logs.get(step, []), key=lambda e: -int(e.get("id", 0)))
            before = request.args.get("before", type=int)
            if before is not None:
                entries = [e for e in entries if int(e.get("id", 0)) < before]
            page = entries[: self.log_page_size]
            return self._reply("logs", lambda: Reply(200, page))

        @self.app.post("/projects/<project>/deployments/<deployment>/retry")
        def retry(project: str, deployment: str) -> Response:
            self._record()

            def pending() -> Reply:
                # DeployHQ re-queues the same deployment now, with start and finish cleared;
                # it retries only a failed deployment that is not archived.
                with self._lock:
                    current = self._current(deployment, project)
                    if current.get("archived") is True:
                        return Reply(422, {"error": "Archived deployments cannot be retried"})
                    if current.get("status") != "failed":
                        return Reply(422, {"error": "This deployment cannot be retried"})
                    body = copy.deepcopy(current)
                    body["status"] = "pending"
                    body["timestamps"] = {
                        "queued_at": self.now(),
                        "started_at": None,
                        "completed_at": None,
                        "duration": None,
                    }
                    self.deployments[deployment] = copy.deepcopy(body)
                    self.done.append(("retry", deployment))
                    answer = self.answer(body)
                return Reply(200, answer)

            # Decided before any delay: the retry is processed even if its answer comes late.
            return self._reply("retry", pending, decide_first=True)

        @self.app.post("/projects/<project>/deployments/<deployment>/rollback")
        def rollback(project: str, deployment: str) -> Response:
            call = self._record()
            if (call.data or {}).get("mode") == "preview":
                with self._lock:
                    good = copy.deepcopy(self._current(deployment, project))
                    preview = self._preview_of(good)
                return self._reply("preview", lambda: Reply(200, preview))

            def queued() -> Reply:
                # A NEW deployment: back to ``deployment``'s end revision, on its servers. As
                # DeployHQ, it refuses an archived or config-files-only target, and the latest
                # deployment on those servers (there is nothing to roll back from).
                with self._lock:
                    good = copy.deepcopy(self._current(deployment, project))
                    refusal = self._rollback_refusal(good)
                    if refusal:
                        return Reply(422, {"error": refusal})
                    new = {
                        **good,
                        "identifier": str(uuid.uuid4()),
                        "status": "pending",
                        "start_revision": {"ref": "fffffffffff0"},
                        "timestamps": {
                            "queued_at": self.now(),
                            "started_at": None,
                            "completed_at": None,
                            "duration": None,
                        },
                    }
                    self.deployments[new["identifier"]] = copy.deepcopy(new)
                    self.history.insert(0, copy.deepcopy(new))
                    self.done.append(("rollback", new["identifier"]))
                    answer = self.answer(new)
                return Reply(200, answer)

            return self._reply("rollback", queued, decide_first=True)

        @self.app.post("/projects/<project>/deployments")
        def create(project: str) -> Response:
            call = self._record()
            asked = (call.data or {}).get("deployment") or {}
            if asked.get("mode") == "preview":
                with self._lock:
                    servers = self._servers_of(str(asked.get("parent_identifier") or ""))
                    end = str(asked.get("end_revision") or "")
                    base = {
                        **deployment_json("x", project),
                        "servers": servers,
                        "branch": str(asked.get("branch") or "main"),
                        "end_revision": {"ref": end},
                    }
                    preview = self._preview_of(base) if servers else None
                if preview is None:
                    return self._reply(
                        "preview", lambda: Reply(422, {"parent_identifier": ["is not valid"]})
                    )
                return self._reply("preview", lambda: Reply(201, preview))

            def created() -> Reply:
                # A NEW deployment of ``end_revision`` to the server or group named by
                # ``parent_identifier``; 422 for one the project does not have.
                with self._lock:
                    parent = str(asked.get("parent_identifier") or "")
                    servers = self._servers_of(parent)
                    if not servers:
                        return Reply(422, {"parent_identifier": ["is not a server or group"]})
                    end = str(asked.get("end_revision") or "")
                    last = next(
                        (r for r in self.history if parent_of(r) == parent and r["servers"]), None
                    )
                    new = {
                        **deployment_json(str(uuid.uuid4()), project, "pending"),
                        "branch": str(asked.get("branch") or "main"),
                        "deployer": "DeployHQ Bot",
                        "start_revision": (last or {}).get("start_revision") or {"ref": ""},
                        "end_revision": {"ref": end, **self.commits.get(end, {})},
                        "servers": servers,
                        "timestamps": {
                            "queued_at": self.now(),
                            "started_at": None,
                            "completed_at": None,
                            "duration": None,
                        },
                        "steps": [],
                    }
                    self.deployments[new["identifier"]] = copy.deepcopy(new)
                    self.history.insert(0, copy.deepcopy(new))
                    self.done.append(("deploy", new["identifier"]))
                    answer = self.answer(new)
                return Reply(201, answer)

            return self._reply("create", created, decide_first=True)

        @self.app.post("/projects/<project>/deployments/<deployment>/abort")
        def abort(project: str, deployment: str) -> Response:
            self._record()

            def aborted() -> Reply:
                with self._lock:
                    current = self._current(deployment, project)
                    if current.get("status") in ("pending", "running"):
                        current["status"] = self.abort_status
                        current.setdefault("timestamps", {})["completed_at"] = self.now()
                        for listed in self.history:
                            if listed["identifier"] == deployment:
                                listed["status"] = self.abort_status
                        self.done.append(("abort", deployment))
                    return Reply(200, {"status": str(current.get("status"))})

            return self._reply("abort", aborted, decide_first=True)

        @self.app.get("/projects/<project>/repository/latest_revision")
        def latest_revision(project: str) -> Response:
            self._record()
            branch = request.args.get("branch", "main")
            ref = self.latest.get(branch, "def456abc789")
            return self._reply("latest_revision", lambda: Reply(200, {"ref": ref}))

        @self.app.get("/projects/<project>/repository/recent_commits")
        def recent_commits(project: str) -> Response:
            self._record()
            branch = request.args.get("branch", "main")
            with self._lock:
                listed = copy.deepcopy(self.commit_log.get(branch) or self._default_log())
            for commit in listed:
                commit.setdefault("email", f"{commit.get('author', 'x').lower()}@example.com")
                commit.setdefault("timestamp", dhq_time(at(0)))
                commit.setdefault("short_message", str(commit.get("message", "")).split("\n")[0])
                commit.setdefault("tags", [])
            body = {"commits": listed, "tags": [], "releases": []}
            return self._reply("recent_commits", lambda: Reply(200, body))

        @self.app.post("/projects/<project>/ai_deployment_overview")
        def ai_deployment_overview(project: str) -> Response:
            self._record()
            if self.ai_overview is None:
                off = {"success": False, "error": "AI features are disabled for this account"}
                return self._reply("ai_overview", lambda: Reply(422, off))
            said = {"success": True, "overview": self.ai_overview, "ai_prompt_version": "v2"}
            return self._reply("ai_overview", lambda: Reply(200, said))

        @self.app.get("/projects/<project>/repository/commit_info")
        def commit_info(project: str) -> Response:
            self._record()
            ref = request.args.get("commit", "")
            info = {"ref": ref, "tags": [], **self.commits.get(ref, {})}
            return self._reply("commit_info", lambda: Reply(200, info))

        @self.app.get("/projects/<project>/deployments/<deployment>")
        def show(project: str, deployment: str) -> Response:
            self._record()
            with self._lock:
                if deployment in self.missing:
                    found = None
                else:
                    if deployment in self.previews:
                        self._advance_preview(deployment)
                    found = self.answer(self._current(deployment, project))
            if found is None:
                return self._reply(
                    "show",
                    lambda: Reply(
                        404, {"error": "Deployment not found", "error_code": "record_not_found"}
                    ),
                )
            return self._reply("show", lambda: Reply(200, found))

        @self.app.get("/projects/<project>/servers")
        def servers(project: str) -> Response:
            # Every server the records name, as DeployHQ lists a project's servers.
            self._record()
            with self._lock:
                listed = [
                    {
                        "id": self.answer({"servers": [s]})["servers"][0]["id"],
                        "identifier": str(s.get("identifier")),
                        "name": str(s.get("name") or ""),
                        "protocol_type": str(s.get("protocol_type") or "ssh"),
                        "preferred_branch": "main",
                        "branch": "",
                        "server_group_identifier": s.get("server_group_identifier"),
                        "enabled": True,
                    }
                    for s in self._all_servers()
                ]
            return self._reply("servers", lambda: Reply(200, listed))

        @self.app.get("/projects/<project>/server_groups")
        def server_groups(project: str) -> Response:
            self._record()
            with self._lock:
                groups: dict[str, list[dict[str, Any]]] = {}
                for server in self._all_servers():
                    group = server.get("server_group_identifier")
                    if group:
                        groups.setdefault(str(group), []).append(
                            {"identifier": str(server.get("identifier")), "name": server["name"]}
                        )
                listed = [
                    {
                        "identifier": group,
                        "name": self.group_names.get(group, group),
                        "servers": members,
                        "preferred_branch": "main",
                    }
                    for group, members in groups.items()
                ]
            return self._reply("server_groups", lambda: Reply(200, listed))

        @self.app.get("/projects/<project>")
        def project_(project: str) -> Response:
            self._record()
            body = {
                "name": "My Project",
                "permalink": project,
                "identifier": "p1",
                "repository": {
                    "scm_type": "git",
                    "url": "git@example.com:app.git",
                    "branch": "main",
                },
            }
            return self._reply("project", lambda: Reply(200, body))

        @self.app.get("/projects")
        def projects() -> Response:
            self._record()
            listed = [{"name": "My Project", "permalink": "my-project", "identifier": "p1"}]
            return self._reply("projects", lambda: Reply(200, listed))

        @self.app.get("/projects/<project>/deployments")
        def index(project: str) -> Response:
            # Newest first, previews left out, no steps; filtered by what a deployment went to
            # (to=<server or group identifier>) and to those under way (currently_running=1).
            self._record()
            page = request.args.get("page", 1, type=int)
            per_page = request.args.get("per_page", 10, type=int)
            to = request.args.get("to")
            running = request.args.get("currently_running") == "1"
            with self._lock:
                listed = [
                    self.answer(r, steps=False)
                    for r in self.history
                    if not str(r.get("status", "")).startswith("preview_")
                    and (to is None or self._went_to(r, to))
                    and (not running or r.get("status") in ("pending", "running"))
                ]
            body = {
                "pagination": {
                    "current_page": page,
                    "total_pages": max(1, -(-len(listed) // per_page)),
                    "offset": (page - 1) * per_page,
                    "total_records": len(listed),
                },
                "records": listed[(page - 1) * per_page : page * per_page],
            }
            return self._reply("index", lambda: Reply(200, body))

    def answer(self, record: dict[str, Any], *, steps: bool = True) -> dict[str, Any]:
        """``record`` as DeployHQ's API gives it, whatever shape a test wrote it in: times with
        the account's offset and milliseconds, an integer duration, integer server ids (a
        step's server is one of them), no steps in a list."""
        body = copy.deepcopy(record)
        timestamps = body.get("timestamps")
        if isinstance(timestamps, dict):
            for key in ("queued_at", "started_at", "completed_at"):
                timestamps[key] = dhq_time(timestamps.get(key))
            duration = timestamps.get("duration")
            if isinstance(duration, str) and duration.strip().isdigit():
                timestamps["duration"] = int(duration)
        for server in body.get("servers") or []:
            if isinstance(server, dict):
                key = str(server.get("identifier") or server.get("name"))
                server.setdefault(
                    "id", self._server_ids.setdefault(key, 1001 + len(self._server_ids))
                )
                server.setdefault("server_group_identifier", None)
        if steps:
            body.setdefault("steps", [])
        else:
            body.pop("steps", None)
        return body

    def _default_log(self) -> list[dict[str, Any]]:
        """Recent commits that hold the default deployment's revisions, newest first."""
        return [
            {"ref": "def456abc789", "author": "Adam", "message": "Fix login"},
            {"ref": "abc123def456", "author": "Adam", "message": "Start"},
            {"ref": "a1b2c3d4e5f6", "author": "Adam", "message": "Known good"},
        ]

    def _preview_of(self, like: dict[str, Any]) -> dict[str, Any]:
        """A new preview of a deployment ``like`` this one (its servers, its revisions),
        kept apart from the list; answered, as the official CLI records, with its identifier
        and status alone."""
        identifier = str(uuid.uuid4())
        self.deployments[identifier] = {
            **copy.deepcopy(like),
            "identifier": identifier,
            "status": "preview_pending",
            "timestamps": {
                "queued_at": self.now(),
                "started_at": None,
                "completed_at": None,
                "duration": None,
            },
            "steps": [],
        }
        self.previews.append(identifier)
        self._preview_seen[identifier] = 0
        return {"identifier": identifier, "status": "preview_pending"}

    def _advance_preview(self, identifier: str) -> None:
        """A preview read: pending for ``preview_reads`` reads, then its outcome."""
        self._preview_seen[identifier] += 1
        record = self.deployments[identifier]
        if self.preview_outcome and self._preview_seen[identifier] > self.preview_reads:
            record["status"] = self.preview_outcome
            if self.preview_outcome == "preview_ready":
                record["files"] = copy.deepcopy(self.preview_files) or {
                    str(s.get("identifier")): {
                        "changed": ["app/models/user.rb", "config/routes.rb"],
                        "removed": ["public/old.js"],
                    }
                    for s in record.get("servers") or []
                }
            else:
                record["log_summary"] = "Could not connect to the server"

    def now(self) -> str:
        """DeployHQ's idea of now, which need not be ours, as it writes times."""
        return dhq_time((datetime.now(UTC) + self.clock).isoformat())

    def _rollback_refusal(self, target: dict[str, Any]) -> str:
        if target.get("archived") is True:
            return "Archived deployments cannot be rolled back"
        if target.get("config_files_deployment") is True:
            return "Cannot rollback to a config files only deployment"
        servers = {s.get("identifier") or s.get("name") for s in target.get("servers") or []}
        for listed in self.history:  # newest first
            if servers & {s.get("identifier") or s.get("name") for s in listed["servers"]}:
                if listed["identifier"] == target["identifier"]:
                    return "Cannot rollback to the latest deployment for this server"
                break
        return ""

    def _deployables(self) -> list[dict[str, Any]]:
        """The project's servers and groups as automatic deployments list them."""
        listed = [
            {"identifier": str(s.get("identifier")), "name": str(s.get("name")), "type": "server"}
            for s in self._all_servers()
        ]
        groups = {
            str(s["server_group_identifier"])
            for s in self._all_servers()
            if s.get("server_group_identifier")
        }
        listed += [
            {"identifier": g, "name": self.group_names.get(g, g), "type": "server_group"}
            for g in sorted(groups)
        ]
        listed += self.extra_deployables
        return [
            {
                **d,
                "auto_deploy": self.auto_deploy.get(d["identifier"], True),
                "preferred_branch": "main",
            }
            for d in listed
        ]

    def auto_deploy_changes(self) -> list[Call]:
        with self._lock:
            return [
                c for c in self.calls if c.method == "POST" and c.path.endswith("/auto_deployments")
            ]

    def _went_to(self, record: dict[str, Any], to: str) -> bool:
        if parent_of(record) == to:
            return True
        servers = {str(s.get("identifier")) for s in record.get("servers") or []}
        return self.to_reading == "members" and to in servers

    def actions(self) -> list[tuple[str, str]]:
        """What DeployHQ did (retries and rollbacks), not what it was asked."""
        with self._lock:
            return list(self.done)

    def record(self, deployment: dict[str, Any]) -> None:
        """Make ``deployment`` DeployHQ's current record of it (as a notification implies);
        what a notification does not carry (the steps) is kept."""
        with self._lock:
            known = self.deployments.get(deployment["identifier"], {})
            self.deployments[deployment["identifier"]] = {**known, **copy.deepcopy(deployment)}

    def set_status(self, identifier: str, status: str, **timestamps: str | None) -> None:
        with self._lock:
            record = self.deployments[identifier]
            record["status"] = status
            record.setdefault("timestamps", {}).update(timestamps)

    def _current(self, deployment: str, project: str) -> dict[str, Any]:
        if deployment not in self.deployments:
            self.deployments[deployment] = deployment_json(deployment, project)
        return self.deployments[deployment]

    def _all_servers(self) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for record in [*self.history, *self.deployments.values()]:
            for server in record.get("servers") or []:
                found.setdefault(str(server.get("identifier")), server)
        return list(found.values())

    def _servers_of(self, parent: str) -> list[dict[str, Any]]:
        """The project's servers that ``parent`` (a server or group identifier) names, as
        DeployHQ's record of a deployment lists them."""
        found: dict[str, dict[str, Any]] = {}
        for record in [*self.history, *self.deployments.values()]:
            for server in record.get("servers") or []:
                if parent in (server.get("identifier"), server.get("server_group_identifier")):
                    found.setdefault(str(server.get("identifier")), copy.deepcopy(server))
        return list(found.values())

    def created(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == "POST" and c.path.endswith("/deployments")]

    def aborts(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.endswith("/abort")]

    def rollbacks(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.endswith("/rollback")]

    def retries(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.endswith("/retry")]


def _toggles(asked: Any) -> list[tuple[str, bool]]:
    """(identifier, on) pairs from a list of {"identifier", "auto_deploy"} (DeployHQ's CLI),
    or a hash of identifier to a boolean or to {"auto_deploy"} (DeployHQ's description)."""
    if isinstance(asked, list):
        items = [(i.get("identifier"), i.get("auto_deploy")) for i in asked if isinstance(i, dict)]
    elif isinstance(asked, dict):
        items = [(k, v.get("auto_deploy") if isinstance(v, dict) else v) for k, v in asked.items()]
    else:
        return []
    return [(str(i), on) for i, on in items if isinstance(i, str) and isinstance(on, bool)]
