"""DeployHQ API client: one ``requests.Session``, Basic auth, timeouts, typed errors."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from itertools import islice
from typing import Any, Protocol
from urllib.parse import quote

import requests

from bot import metrics
from bot.deployhq import answers, auto_deploys, commits
from bot.deployhq.auto_deploys import Deployable, ServerFigures
from bot.deployhq.deadline import Deadline, DeadlineAdapter, never_sent
from bot.deployhq.deployment import FAILED, Deployment, Revision, Step, log_lines
from bot.deployhq.previews import Preview

log = logging.getLogger(__name__)

# (connect, read) seconds when none are given (the settings give DEPLOYHQ_TIMEOUT's). The read
# timeout bounds each read only; the whole call is bounded by ``deadline`` (see below).
DEFAULT_TIMEOUT = (3.05, 20.0)
MAX_ANSWER_BYTES = 2 * 2**20  # DeployHQ's largest answers (lists, step logs) are far smaller
POOL_SIZE = 32
# The deployments list is read 50 at a time, and never more than 5 pages (250 deployments,
# filtered to the servers in question where DeployHQ can filter) for one question.
PAUSE_CHECK_SECONDS = 0.5
PER_PAGE = 50
HISTORY_PAGES = 5


class DeployHQError(Exception):
    """A call that did not succeed, with what DeployHQ said about it.

    ``status`` is the HTTP status, or ``None`` when no answer came (``kind`` then says why:
    ``"connect"``, ``"timeout"``). ``message`` is DeployHQ's own text when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str = "http",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind
        self.retry_after = retry_after
        self.what = ""  # what was being read, when the caller names it (``reading``)

    def reading(self, what: str) -> DeployHQError:
        """The same error, naming what was being read (``the project's servers``)."""
        self.what = what
        return self

    @property
    def may_have_happened(self) -> bool:
        """True when the request may have been carried out although no proper answer came
        back: no answer at all, one cut off or unreadable, or a server error (a proxy's 504
        page may stand for work done behind it). A refusal (4xx) or no connection: it was not."""
        if self.kind in ("timeout", "dropped", "invalid", "too-large"):
            return True
        return self.status is not None and self.status >= 500


class SharedPause(Protocol):
    """A pause DeployHQ asked for, seen by every process (``store.Pauses``)."""

    def hold(self, seconds: float) -> None: ...
    def left(self) -> float: ...


class DeployHQ:
    def __init__(
        self,
        base_url: str,
        username: str,
        api_key: str,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        deadline: float | None = None,
        session: requests.Session | None = None,
        pauses: SharedPause | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # DeployHQ's Retry-After, honoured here (monotonic) and, through ``pauses``, by every
        # process; the shared pause is looked at no more than every PAUSE_CHECK_SECONDS.
        self._busy_until = 0.0
        self._pauses = pauses
        self._shared_checked = -PAUSE_CHECK_SECONDS
        self.timeout = timeout
        # However DeployHQ answers, a call ends by then: an action's claim outlives it.
        self.deadline = deadline if deadline is not None else timeout[1]
        self.session = session or requests.Session()
        # As many kept-alive connections as threads that call DeployHQ at once.
        adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=POOL_SIZE)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.auth = (username, api_key)
        self.session.headers.update(
            {
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": "deployhq-slack-bot",
            }
        )

    def retry(self, project: str, deployment: str) -> Deployment:
        """Re-queue a failed deployment; DeployHQ answers with it, status ``pending``."""
        data = self._call("POST", f"/projects/{_seg(project)}/deployments/{_seg(deployment)}/retry")
        return _deployment(data, project)

    def projects(self) -> list[dict[str, Any]]:
        """The projects this API user can see (``GET /projects``)."""
        data = self._call("GET", "/projects")
        if not isinstance(data, list):
            raise DeployHQError("DeployHQ sent an unexpected list of projects", kind="invalid")
        return [p for p in data if isinstance(p, dict)]

    def deployment(self, project: str, deployment: str) -> Deployment:
        data = self._call("GET", f"/projects/{_seg(project)}/deployments/{_seg(deployment)}")
        return _deployment(data, project)

    def failure_log(self, project: str, deployment: str) -> tuple[Step, list[str]] | None:
        """The step that failed and its log lines; ``None`` when no step failed."""
        return self.step_log(project, self.deployment(project, deployment))

    def step_log(self, project: str, record: Deployment) -> tuple[Step, list[str]] | None:
        """The failing step of ``record`` (DeployHQ's own, with its steps) and its last log
        lines: one page, newest first, is enough to end on the error."""
        step = record.failed_step
        if step is None:
            return None
        if not step.has_logs:
            return step, []
        logs = self._call(
            "GET",
            f"/projects/{_seg(project)}/deployments/{_seg(record.identifier)}"
            f"/steps/{_seg(step.identifier)}/logs",
        )
        return step, log_lines(logs)

    def rollback(self, project: str, to_deployment: str) -> Deployment:
        """Put ``to_deployment``'s revision back on its servers; DeployHQ answers with the NEW
        deployment it queued to do so."""
        data = self._call(
            "POST",
            f"/projects/{_seg(project)}/deployments/{_seg(to_deployment)}/rollback",
            json={"mode": "queue"},
        )
        return _deployment(data, project)

    def abort(self, project: str, deployment: str) -> str:
        """Abort a deployment that is pending or running; DeployHQ answers with its status."""
        data = self._call("POST", f"/projects/{_seg(project)}/deployments/{_seg(deployment)}/abort")
        return _text_of(data, "status")

    def deploy(self, project: str, parent: str, branch: str, end_revision: str) -> Deployment:
        """Queue a NEW deployment of ``end_revision`` of ``branch`` to ``parent`` (a server or
        server group identifier); DeployHQ answers 201 with it."""
        body = _new_deployment(parent, branch, end_revision, "queue")
        data = self._call(
            "POST", f"/projects/{_seg(project)}/deployments", json={"deployment": body}
        )
        return _deployment(data, project)

    def auto_deployments(self, project: str) -> list[Deployable]:
        """The project's servers and groups, each with automatic deployments on or off."""
        data = self._call("GET", f"/projects/{_seg(project)}/auto_deployments")
        found: list[Deployable] = _parsed(auto_deploys.deployables, data)
        return found

    def set_auto_deploy(self, project: str, identifier: str, on: bool) -> str:
        """Turn automatic deployments on or off for one server or group, sent as DeployHQ's
        own CLI sends it; what DeployHQ reported of it when it skipped it ("" otherwise)."""
        body = {"deployables": [{"identifier": identifier, "auto_deploy": on}]}
        data = self._call("POST", f"/projects/{_seg(project)}/auto_deployments", json=body)
        listed = {d.identifier for d in _parsed(auto_deploys.deployables, data)}
        if identifier in listed:
            return ""
        return auto_deploys.skipped(data) or f"DeployHQ's answer left {identifier} out (skipped)"

    def insights(self, project: str, period: int = 30) -> list[ServerFigures]:
        """Each server's figures over the last ``period`` days."""
        data = self._call(
            "GET", f"/projects/{_seg(project)}/insights", params={"period": str(period)}
        )
        figures: list[ServerFigures] = _parsed(auto_deploys.insights, data)
        return figures

    def latest_revision(self, project: str, branch: str) -> str:
        """The newest commit DeployHQ knows on ``branch`` (its full ref)."""
        path = f"/projects/{_seg(project)}/repository/latest_revision"
        return _text_of(self._call("GET", path, params={"branch": branch}), "ref")

    def commit(self, project: str, ref: str) -> Revision:
        """The commit's message and author, as far as DeployHQ gives them."""
        path = f"/projects/{_seg(project)}/repository/commit_info"
        data = self._call("GET", path, params={"commit": ref})
        return Revision(
            ref, _text_of(data, "message", required=False), _text_of(data, "author", required=False)
        )

    def recent_commits(self, project: str, branch: str) -> list[Revision]:
        """The branch's recent commits, newest first, as DeployHQ's repository cache has them."""
        path = f"/projects/{_seg(project)}/repository/recent_commits"
        try:
            return commits.parse(self._call("GET", path, params={"branch": branch}))
        except ValueError as exc:
            raise DeployHQError(
                f"DeployHQ sent an unexpected answer: {exc}", kind="invalid"
            ) from exc

    def ai_overview(self, project: str, start_ref: str, end_ref: str) -> str:
        """DeployHQ's own summary of the changes from ``start_ref`` to ``end_ref``; a
        ``DeployHQError`` in its words when it gives none (its AI features are off for the
        account, or the repository is not cloned: 400 or 422 ``{"success": false, "error"}``)."""
        data = self._call(
            "POST",
            f"/projects/{_seg(project)}/ai_deployment_overview",
            json={"start_ref": start_ref, "end_ref": end_ref},
        )
        if isinstance(data, dict) and data.get("success") is False:
            said = data.get("error")
            raise DeployHQError(said if isinstance(said, str) and said else "no overview")
        return _text_of(data, "overview")

    def preview_deploy(self, project: str, parent: str, branch: str, start: str, end: str) -> str:
        """Ask DeployHQ for a preview of deploying ``end`` of ``branch`` to ``parent``: what it
        would change, without changing anything. The preview's identifier (its answer may be
        that and its status alone)."""
        body = _new_deployment(parent, branch, end, "preview", start)
        data = self._call(
            "POST", f"/projects/{_seg(project)}/deployments", json={"deployment": body}
        )
        return _text_of(data, "identifier")

    def preview_rollback(self, project: str, to_deployment: str) -> str:
        """Ask DeployHQ for a preview of rolling back to ``to_deployment``; its identifier."""
        data = self._call(
            "POST",
            f"/projects/{_seg(project)}/deployments/{_seg(to_deployment)}/rollback",
            json={"mode": "preview"},
        )
        return _text_of(data, "identifier")

    def preview(self, project: str, identifier: str) -> Preview:
        """A preview's status and, once ready, its files (DeployHQ lists no previews: only
        its identifier finds it)."""
        data = self._call("GET", f"/projects/{_seg(project)}/deployments/{_seg(identifier)}")
        try:
            return Preview.from_api(data)
        except ValueError as exc:
            raise DeployHQError(
                f"DeployHQ sent an unexpected answer: {exc}", kind="invalid"
            ) from exc

    def failed_deployments(
        self, project: str, count: int, *, max_pages: int = 3
    ) -> list[Deployment]:
        """The project's ``count`` most recent failed deployments, newest first."""
        failed = (d for d in self.history(project, max_pages=max_pages) if d.status == FAILED)
        return list(islice(failed, count))

    def history(
        self, project: str, *, to: str = "", max_pages: int = HISTORY_PAGES, whole: bool = False
    ) -> Iterator[Deployment]:
        """The project's deployments, newest first (DeployHQ lists no previews), filtered to
        those deployed to ``to`` (a server's or server group's identifier) when given: up to
        ``max_pages`` pages of 50, each read only when the one before has been used up.
        ``whole``: a reader that needs more than that hears so (``DeployHQError``, kind
        ``too-long``) instead of a list that merely ends."""
        params: dict[str, Any] = {"per_page": PER_PAGE}
        if to:
            params["to"] = to
        for page in range(1, max_pages + 1):
            data = self._call(
                "GET", f"/projects/{_seg(project)}/deployments", params={**params, "page": page}
            )
            records = data.get("records") if isinstance(data, dict) else data
            if not isinstance(records, list):
                raise DeployHQError(
                    "DeployHQ sent an unexpected list of deployments", kind="invalid"
                )
            for record in records:
                try:
                    yield Deployment.from_api(record, project=project)
                except ValueError:
                    continue  # one odd record must not hide the others
            if not records or not _more_pages(data, page, len(records)):
                return
        if whole:
            raise DeployHQError(
                f"DeployHQ lists more than {max_pages * PER_PAGE} deployments since; the bot "
                "reads no further",
                kind="too-long",
            ).reading("the servers' recent deployments")

    def read(self, path: str, **params: str) -> Any:
        """A plain read of ``path``, as JSON (``targets.py`` reads servers and groups)."""
        return self._call("GET", path, params=params or None)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        # While DeployHQ has asked to be left alone (429 or 503 with Retry-After), nothing is
        # sent: the caller hears how long is left, as it would from DeployHQ.
        now = time.monotonic()
        if self._pauses is not None and now - self._shared_checked >= PAUSE_CHECK_SECONDS:
            self._shared_checked = now
            self._busy_until = max(self._busy_until, now + self._pauses.left())
        wait = self._busy_until - now
        if wait > 0:
            raise DeployHQError(
                f"DeployHQ asked for a pause; {math.ceil(wait)} s left",
                kind="busy",
                retry_after=wait,
            )
        started = time.monotonic()
        try:
            return self._call_timed(method, path, **kwargs)
        finally:
            metrics.DEPLOYHQ_SECONDS.labels(_call_name(method, path)).observe(
                time.monotonic() - started
            )

    def _call_timed(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.base_url + path
        deadline = Deadline(self.deadline)
        try:
            with deadline:
                # Read as it streams in, within the deadline, and never past MAX_ANSWER_BYTES.
                response = self.session.request(
                    method, url, timeout=self.timeout, stream=True, **kwargs
                )
                body = _read_bounded(response)
        except requests.ConnectTimeout as exc:
            raise DeployHQError("could not connect to DeployHQ in time", kind="connect") from exc
        except requests.Timeout as exc:
            raise DeployHQError("DeployHQ did not answer in time", kind="timeout") from exc
        except requests.RequestException as exc:
            if deadline.passed:
                raise DeployHQError(
                    f"DeployHQ did not answer within {self.deadline:g} s", kind="timeout"
                ) from exc
            if never_sent(exc):
                raise DeployHQError(
                    f"could not reach DeployHQ ({type(exc).__name__})", kind="connect"
                ) from exc
            raise DeployHQError(
                f"the connection to DeployHQ broke before it answered ({type(exc).__name__})",
                kind="dropped",
            ) from exc
        if response.status_code >= 400:
            # A refusal (4xx) is its caller's to tell, once, in its own terms; a failure or a
            # rate limit is DeployHQ's, said here.
            status = response.status_code
            loud = status >= 500 or status == 429
            log.log(
                logging.WARNING if loud else logging.INFO,
                "DeployHQ answered %s %s with HTTP %s",
                method,
                path,
                status,
            )
            retry_after = answers.retry_after(response.headers.get("Retry-After", ""))
            if retry_after and response.status_code in (429, 503):
                self._busy_until = max(self._busy_until, time.monotonic() + retry_after)
                if self._pauses is not None:
                    self._pauses.hold(retry_after)
            raise DeployHQError(
                answers.error_message(response.status_code, response.reason, body),
                status=response.status_code,
                retry_after=retry_after,
            )
        try:
            return json.loads(body)
        except ValueError as exc:
            raise DeployHQError(
                f"DeployHQ sent an answer that is not JSON (HTTP {response.status_code})",
                status=response.status_code,
                kind="invalid",
            ) from exc


def _new_deployment(
    parent: str, branch: str, end: str, mode: str, start: str = ""
) -> dict[str, Any]:
    """A new deployment's body: queued, or a preview of the same."""
    return {
        "parent_identifier": parent,
        "branch": branch,
        "end_revision": end,
        **({"start_revision": start} if start else {}),
        "mode": mode,
        "copy_config_files": True,
        "run_build_commands": True,
        "use_build_cache": True,
    }


def _call_name(method: str, path: str) -> str:
    """A short name for a call, for its metric: ``retry``, ``deployment``, ``history``, …"""
    parts = path.strip("/").split("/")
    if method == "POST" or "repository" in parts:
        return parts[-1]  # retry, rollback, abort, deployments (a new one), latest_revision
    if len(parts) == 3 and parts[2] != "deployments":
        return parts[2]  # auto_deployments, insights, servers, server_groups
    return {1: "projects", 3: "history", 4: "deployment"}.get(len(parts), "step_logs")


def deployment_page_url(web_url: str, project: str, deployment: str) -> str:
    return f"{web_url.rstrip('/')}/projects/{_seg(project)}/deployments/{_seg(deployment)}"


def _seg(value: str) -> str:
    return quote(value, safe="")


def _more_pages(data: Any, page: int, count: int) -> bool:
    """Whether the list goes on past ``page``: by DeployHQ's ``pagination`` (or the keys other
    clients of it meet: ``total_pages``, ``total``); a bare array ends when a page is short."""
    pagination = data.get("pagination") if isinstance(data, dict) else None
    if isinstance(pagination, dict):
        total_pages = pagination.get("total_pages")
        if isinstance(total_pages, int) and not isinstance(total_pages, bool):
            return page < total_pages
        total = pagination.get("total") or pagination.get("total_records")
        if isinstance(total, int) and not isinstance(total, bool):
            return page * PER_PAGE < total
    return count >= PER_PAGE


def _text_of(data: Any, key: str, *, required: bool = True) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, str) and value.strip():
        return value.strip()[: answers.MAX_MESSAGE * 4]
    if required:
        raise DeployHQError(f"DeployHQ's answer has no {key!r}", kind="invalid")
    return ""


def _deployment(data: Any, project: str) -> Deployment:
    try:
        return Deployment.from_api(data, project=project, steps=True)
    except ValueError as exc:
        raise DeployHQError(f"DeployHQ sent an unexpected answer: {exc}", kind="invalid") from exc


def _read_bounded(response: requests.Response) -> bytes:
    """The answer's body, read a piece at a time; ``DeployHQError`` past MAX_ANSWER_BYTES, so
    a huge answer (a step log of many megabytes) is never held whole."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise DeployHQError(
                    f"DeployHQ's answer was larger than {MAX_ANSWER_BYTES // 2**20} MB; "
                    "it was not read",
                    status=response.status_code,
                    kind="too-large",
                )
            chunks.append(chunk)
    finally:
        response.close()
    return b"".join(chunks)


def _parsed(parse: Any, data: Any) -> Any:
    """``parse(data)``, or a ``DeployHQError`` saying DeployHQ's answer was not what it
    describes."""
    try:
        return parse(data)
    except ValueError as exc:
        raise DeployHQError(f"DeployHQ sent an unexpected answer: {exc}", kind="invalid") from exc
