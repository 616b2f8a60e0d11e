"""What a burst of failures costs DeployHQ: the lookups that draw a card share their answers (one
read per project, branch or commit), and a lookup DeployHQ refuses for the account is remembered
across processes and said once, not asked again for every failure."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from bot.config import Settings
from tests.conftest import BotServer
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import delivery

FAILURES = [f"{n:08d}-2222-3333-4444-555555555555" for n in range(1, 4)]
ON = {"DEPLOYHQ_WHAT_CHANGED": "true", "DEPLOYHQ_PAUSE_AUTO_DEPLOY": "true"}
NEWER = "0123456789abcdef0123456789abcdef01234567"


def _asked(fake_deployhq: FakeDeployHQ, last: str) -> int:
    return sum(1 for c in fake_deployhq.calls if c.path.rsplit("/", 1)[-1] == last)


def _burst(bot: BotServer, fake_slack: FakeSlack) -> None:
    for identifier in FAILURES:
        bot.webhook(delivery(identifier=identifier))
    fake_slack.wait_for(lambda: len(fake_slack.api_calls("chat.postMessage")) >= len(FAILURES))
    bot.settle()


def test_a_lookup_deployhq_refuses_is_asked_once_and_said_once_for_a_burst(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    caplog: pytest.LogCaptureFixture,
):
    """An account without a repository or automatic deployments: DeployHQ answers 404 to the
    branch's newest commit, the project's automatic deployments and its recent commits. Three
    failures ask each of them once, and each refusal is one WARNING line, not one per failure
    (nor one more from the client)."""
    caplog.set_level(logging.INFO)
    gone = Reply(404, {"error": "Repository not found", "error_code": "record_not_found"})
    for kind in ("latest_revision", "auto_deployments", "recent_commits"):
        fake_deployhq.always(kind, gone)
    bot = start_bot(Settings.from_env({**env, **ON}))

    _burst(bot, fake_slack)

    asked = {k: _asked(fake_deployhq, k) for k in ("latest_revision", "auto_deployments")}
    assert asked == {"latest_revision": 1, "auto_deployments": 1}
    assert _asked(fake_deployhq, "recent_commits") <= 1  # none when no card had a range to tell
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    refusals = [w for w in warned if "DeployHQ refuses" in w]
    assert len(refusals) == len({w.split(" for project")[0] for w in refusals}) <= 3, refusals
    assert not [w for w in warned if "with HTTP 404" in w], warned
    # The cards are still drawn, with their failure and Retry, without what was refused.
    assert len(fake_slack.api_calls("chat.postMessage")) >= len(FAILURES)


def test_a_burst_on_one_branch_reads_its_newest_commit_once(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    """Three failures of one branch: the branch's newest commit (and its words), and the
    project's automatic deployments, are each read once for all three cards."""
    fake_deployhq.latest["main"] = NEWER
    bot = start_bot(Settings.from_env({**env, **ON}))

    _burst(bot, fake_slack)

    counted = {
        k: _asked(fake_deployhq, k) for k in ("latest_revision", "commit_info", "auto_deployments")
    }
    assert counted == {"latest_revision": 1, "commit_info": 1, "auto_deployments": 1}
    offered = [u for u in fake_slack.api_calls("chat.update") if "deployhq_deploy_latest" in str(u)]
    assert offered  # Deploy latest is still offered, from the shared answer
