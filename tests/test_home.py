"""The App Home: opening the Home tab publishes every project's open failures (each with a link
to its card), its paused automatic deployments and who paused them, DeployHQ's 30-day figures
per server, and the bot's health; at bounded cost however many open it, within Slack's 100
blocks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import Settings
from bot.deployhq.auto_deploys import Deployable, ServerFigures
from bot.messages.home import MAX_BLOCKS, Health, OpenFailure, Paused, ProjectView, home_view
from tests.conftest import BotServer
from tests.support.cards import buttons
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import delivery

SERVER = "7563d091"


@pytest.fixture
def homes(start_bot: Callable[..., BotServer], env: dict[str, str]) -> Callable[..., BotServer]:
    def start(**extra: str) -> BotServer:
        return start_bot(Settings.from_env({**env, **extra}))

    return start


def published(slack: FakeSlack) -> list[dict[str, Any]]:
    views = []
    for call in slack.api_calls("views.publish"):
        view = call["view"]
        views.append(
            {"user_id": call["user_id"], **(json.loads(view) if isinstance(view, str) else view)}
        )
    return views


def text_of(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def reads(deployhq: FakeDeployHQ, what: str) -> list[str]:
    return [c.path for c in deployhq.calls if c.method == "GET" and c.path.endswith(f"/{what}")]


def test_the_home_tab_shows_open_failures_pauses_figures_and_health(
    homes: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = homes(DEPLOYHQ_PAUSE_AUTO_DEPLOY="true")
    bot.webhook(delivery())
    card = fake_slack.wait_for(
        lambda: next(
            (
                u
                for u in fake_slack.api_calls("chat.update")
                if "deployhq_pause_auto_deploy" in buttons(u)
            ),
            None,
        )
    )
    bot.click(
        buttons(card)["deployhq_pause_auto_deploy"]["value"],
        user_id="U0ANN",
        action_id="deployhq_pause_auto_deploy",
    )
    bot.settle()

    assert bot.home_opened("U0VIEWER").status_code == 200
    bot.settle()
    (view,) = published(fake_slack)
    assert view["user_id"] == "U0VIEWER" and view["type"] == "home"
    shown = text_of(view)
    assert "*my-project*" in shown
    assert ":x: *My Project* (`main`) failed on Production Server" in shown
    assert "<https://acme.slack.com/archives/C0DEPLOYS/p1700000000000001|Open the card>" in shown
    assert "Auto-deploy paused: *Production Server* by <@U0ANN> <!date^" in shown
    assert (
        "*Production Server* (30 days)\\nlatest *failed* · 92% succeeded · 3.5 deploys a week"
        in shown
    )
    assert "answers with the bot's key" in shown
    assert "Store (redis): :white_check_mark: answers" in shown
    assert "Last notification from DeployHQ: <!date^" in shown
    assert len(view["blocks"]) <= MAX_BLOCKS
    insights = [c for c in fake_deployhq.calls if c.path.endswith("/insights")]
    assert [c.raw_uri.split("?", 1)[-1] for c in insights] == ["period=30"]


def test_twenty_people_opening_home_at_once_cost_one_read_per_project_and_one_link_per_card(
    homes: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    first, second = (
        homes(DEPLOYHQ_PROJECTS="my-project,other-project"),
        homes(DEPLOYHQ_PROJECTS="my-project,other-project"),
    )
    first.webhook(delivery())  # one open failure, whose card's link every view carries
    first.settle()
    fake_slack.wait_for(lambda: fake_slack.api_calls("chat.postMessage"))
    fake_deployhq.always(
        "insights", Reply(200, None, delay=0.3)
    )  # slow: everyone waits for one read
    fake_slack.always("chat.getPermalink", Reply(200, None, delay=0.3))

    def open_home(n: int) -> None:
        (first, second)[n % 2].home_opened(f"U0V{n:02d}")

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(open_home, range(20)))
    first.settle()
    second.settle()

    assert len(published(fake_slack)) == 20
    assert sorted({v["user_id"] for v in published(fake_slack)}) == [
        f"U0V{n:02d}" for n in range(20)
    ]
    insights = reads(fake_deployhq, "insights")
    assert sorted(insights) == ["/projects/my-project/insights", "/projects/other-project/insights"]
    assert len(reads(fake_deployhq, "auto_deployments")) == 2  # one per project too
    assert len(fake_slack.api_calls("chat.getPermalink")) == 1  # one per card, kept a day
    assert all("|Open the card>" in text_of(v) for v in published(fake_slack))


def test_a_deployhq_that_cannot_answer_is_said_on_home_and_asked_once(
    homes: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = homes(DEPLOYHQ_PROJECTS="my-project")
    fake_deployhq.always(
        "insights", Reply(503, {"error": "Down for maintenance"}, headers={"Retry-After": "0"})
    )
    for n in range(5):
        bot.home_opened(f"U0V{n}")
    bot.settle()
    views = published(fake_slack)
    assert len(views) == 5
    assert ":warning: DeployHQ:" in text_of(views[-1])
    assert "api_key" not in text_of(views[-1]).lower() and "k" * 40 not in text_of(views[-1])
    assert len(reads(fake_deployhq, "insights")) <= 2  # the failure is kept briefly too


def test_with_no_project_yet_home_asks_deployhq_whether_it_answers_the_key_once_a_minute(
    homes: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = homes()
    fake_deployhq.script("projects", Reply(401, {"error": "Access denied"}))
    for n in range(3):
        bot.home_opened(f"U0V{n}")
    bot.settle()
    views = published(fake_slack)
    assert len(views) == 3
    assert "No project yet" in text_of(views[0])
    assert "DeployHQ: :x: DeployHQ refused the bot's API credentials (HTTP 401)" in text_of(
        views[-1]
    )
    assert "answers with the bot's key" not in text_of(views[-1])  # nothing claimed unasked
    assert [c.path for c in fake_deployhq.calls] == ["/projects"]  # kept, for everyone


def test_someone_who_may_not_look_deployments_up_is_told_so_and_nothing_is_read(
    homes: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = homes(DEPLOYHQ_ACTION_USERS="U0ANN", DEPLOYHQ_PROJECTS="my-project")
    bot.home_opened("U0EVE")
    bot.settle()
    (view,) = published(fake_slack)
    assert "not among the people allowed" in text_of(view)
    assert "my-project" not in text_of(view)
    assert fake_deployhq.calls == []


def test_the_messages_tab_publishes_nothing(homes: Callable[..., BotServer], fake_slack: FakeSlack):
    bot = homes()
    bot.home_opened("U0VIEWER", tab="messages")
    bot.settle()
    assert published(fake_slack) == []


def test_a_home_of_many_projects_stays_within_slacks_100_blocks_and_says_how_many_more():
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    failures = [
        OpenFailure(
            "p",
            f"Project {n}",
            "main",
            ("Web",),
            now - timedelta(hours=n),
            "https://acme.slack.com/x",
        )
        for n in range(12)
    ]
    figures = [ServerFigures(f"s{n}", f"Server {n}", "completed", 0.98, 2.0, 8) for n in range(14)]
    paused = [Paused(Deployable("s1", "<!channel>", "server", False), "U0ANN", now)]
    projects = [ProjectView(f"project-{n}", failures, paused, figures) for n in range(30)]
    health = Health("", "", "redis", "", None)

    view = home_view(projects, health, now)
    blocks = view["blocks"]
    assert isinstance(blocks, list) and len(blocks) <= MAX_BLOCKS
    shown = json.dumps(blocks, ensure_ascii=False)
    assert "…and 4 more open failures." in shown
    assert "…and 4 more servers." in shown
    assert "more projects not shown." in shown
    assert "98% succeeded" in shown
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown
    assert "none received yet" in shown  # the health section is always there


def _seed(redis_url: str, projects: int, failures: int) -> None:
    """``failures`` open failures in each of ``projects`` projects, their cards in Slack, kept
    in the store as the bot keeps them (as after a burst of failures)."""
    from bot.cards.rules import Card
    from bot.cards.store import CardStore
    from bot.deployhq.deployment import Deployment
    from bot.store.kv import Keys, RedisKeyValue, open_redis

    records = CardStore(RedisKeyValue(open_redis(redis_url)), Keys())
    for p in range(projects):
        for n in range(failures):
            identifier = f"{p:04d}{n:04d}-2222-3333-4444-555555555555"
            deployment = Deployment.from_api(
                delivery(identifier=identifier, project={"name": f"P{p}", "permalink": f"p{p}"})
            )
            card = Card("C0DEPLOYS", deployment, ts=f"17000000{p:02d}.{n:06d}", drawn=True)
            records.save_card(card)
            records.list_card(card)


def test_home_asks_slack_for_the_links_of_the_cards_it_shows_only(
    homes: Callable[..., BotServer], fake_slack: FakeSlack, redis_url: str
):
    """40 open failures of one project: the Home shows the newest 8 (and says 32 more), and
    asks Slack for those 8 links only."""
    _seed(redis_url, projects=1, failures=40)
    bot = homes()

    assert bot.home_opened("U0VIEWER").status_code == 200
    bot.settle()

    (view,) = published(fake_slack)
    assert text_of(view).count("|Open the card>") == 8
    assert "…and 32 more open failures." in text_of(view)
    assert len(fake_slack.api_calls("chat.getPermalink")) == 8


def test_a_home_of_500_failures_in_50_projects_is_published_within_3_s_while_deployhq_is_slow(
    homes: Callable[..., BotServer],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    redis_url: str,
):
    """DeployHQ answers each read in 0.5 s: the projects are read at once (eight at a time),
    and the Home is published by its deadline with every card it shows linked."""
    _seed(redis_url, projects=50, failures=10)
    for kind in ("auto_deployments", "insights"):
        fake_deployhq.always(kind, Reply(200, None, delay=0.5))
    bot = homes()

    started = time.monotonic()
    assert bot.home_opened("U0FIRST").status_code == 200
    fake_slack.wait_for(lambda: published(fake_slack), timeout=10)
    took = time.monotonic() - started
    assert took < 3.0, took
    shown = text_of(published(fake_slack)[0])
    drawn = shown.count(":x: *P")
    assert drawn >= 8 and shown.count("|Open the card>") == drawn
    assert len(fake_slack.api_calls("chat.getPermalink")) == drawn  # the cards shown only
    assert "DeployHQ has not answered yet" not in shown  # the projects shown were read in time


def test_a_project_deployhq_has_not_answered_for_by_the_deadline_is_shown_as_not_read_yet(
    homes: Callable[..., BotServer],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    redis_url: str,
):
    """DeployHQ takes 3 s a read: the Home does not wait for it; it says so, the reads go on,
    and the next open shows what they found (each project read once)."""
    _seed(redis_url, projects=2, failures=1)
    for kind in ("auto_deployments", "insights"):
        fake_deployhq.always(kind, Reply(200, None, delay=3.0))
    bot = homes()

    started = time.monotonic()
    assert bot.home_opened("U0FIRST").status_code == 200
    fake_slack.wait_for(lambda: published(fake_slack), timeout=10)
    assert time.monotonic() - started < 3.0
    first = text_of(published(fake_slack)[0])
    assert first.count("DeployHQ has not answered yet for this project") == 2
    assert first.count("|Open the card>") == 2  # Slack's links do not wait for DeployHQ

    fake_deployhq.wait_for(lambda: len(reads(fake_deployhq, "insights")) == 2, timeout=20)
    time.sleep(3.5)  # the reads under way end, and their answers are kept
    assert bot.home_opened("U0AGAIN").status_code == 200
    fake_slack.wait_for(lambda: len(published(fake_slack)) == 2, timeout=15)
    assert "DeployHQ has not answered yet" not in text_of(published(fake_slack)[1])
    assert len(reads(fake_deployhq, "insights")) == 2  # read once each, kept for the next
