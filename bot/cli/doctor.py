"""``python -m bot doctor``: the running configuration checked against the real services.

One line per check: what was checked, ✓ or ✗, and for each ✗ the fix, naming the setting to
change. Nothing is posted, retried or written (except Redis's PING).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.cli import manifest
from bot.config import ConfigError, Settings
from bot.deployhq.client import DeployHQError
from bot.runtime.connections import deployhq_client, open_store
from bot.slack.client import SLACK_ERRORS, slack_error
from bot.store.kv import WithoutStore
from bot.words.buttons import WEBHOOK_PATH

PASS, FAIL, NOTE = "✓", "✗", "·"

# What a missing store means to doctor, decided here: it is the check's finding (a failed check
# with its fix), not a log line.
WITHOUT_STORE = WithoutStore(
    "cli", {"doctor": "reported as a failed check, with its fix"}, quiet=frozenset({"doctor"})
)


@dataclass(frozen=True)
class Check:
    mark: str
    what: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.mark} {self.what}" + (f"\n    fix: {self.fix}" if self.fix else "")


def run(
    environ: Mapping[str, str] | None = None, *, app_url: str = "", show_secrets: bool = False
) -> list[Check]:
    try:
        settings = Settings.from_env(environ)
    except ConfigError as error:
        return [Check(FAIL, "settings", problem) for problem in error.problems]
    checks = [Check(PASS, "settings: every required setting is present and well-formed")]
    checks += [Check(NOTE, f"settings: {warning}") for warning in settings.warnings()]
    checks += slack(settings)
    checks += deployhq(settings)
    checks += redis(settings)
    checks += webhook(settings, app_url=app_url, show_secrets=show_secrets)
    checks.append(metrics(settings, app_url=app_url))
    checks.append(approval(settings))
    checks.append(home(settings))
    return checks


def home(settings: Settings) -> Check:
    """The App Home: the manifest turns it on and subscribes to ``app_home_opened``; whether
    Slack has sent the event yet (the app's own settings can only be seen in Slack)."""
    if not (manifest.home_tab() and manifest.bot_events() >= manifest.HOME_EVENTS):
        return Check(
            FAIL,
            "App Home: manifest.yml lacks the Home tab or app_home_opened",
            "restore manifest.yml's app_home and event_subscriptions",
        )
    fix = (
        "update the Slack app from `python -m bot manifest` (it turns on the Home tab and the "
        "app_home_opened event), then open the bot's Home tab in Slack"
    )
    opened = open_store(settings).ledger.last_heard("home")  # None too without the store
    if opened is None:
        return Check(NOTE, "App Home: no app_home_opened event has reached the bot yet", fix)
    minutes = max(0, round((time.time() - opened) / 60))
    return Check(PASS, f"App Home: last opened {minutes} min ago (Slack sends app_home_opened)")


def approval(settings: Settings) -> Check:
    """Four eyes: off, on with someone to approve, or on with nobody (every gated action is
    refused)."""
    if not settings.approval_servers:
        return Check(NOTE, "approval: off (DEPLOYHQ_APPROVAL_SERVERS is not set)")
    servers = ", ".join(sorted(settings.approval_servers))
    if not (settings.approvers_users or settings.approvers_usergroups):
        return Check(
            FAIL,
            f"approval: actions on {servers} need an approver, but nobody may approve, so "
            "every one of them is refused",
            "set DEPLOYHQ_APPROVERS_USERS (Slack user ids) or DEPLOYHQ_APPROVERS_USERGROUPS "
            "(user-group ids)",
        )
    who = len(settings.approvers_users) + len(settings.approvers_usergroups)
    return Check(
        PASS,
        f"approval: actions on {servers} wait for one of {who} approver entr"
        f"{'y' if who == 1 else 'ies'} ({settings.approval_minutes:g} minutes)",
    )


def metrics(settings: Settings, *, app_url: str) -> Check:
    if not settings.metrics_token:
        return Check(NOTE, "metrics: METRICS_TOKEN is not set, so /metrics is off")
    base = app_url.rstrip("/") or "https://<your-app>"
    return Check(
        NOTE,
        f"metrics: scrape {base}/metrics with the header Authorization: Bearer <METRICS_TOKEN>",
    )


def slack(settings: Settings) -> list[Check]:
    client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=10)
    try:
        answer = client.auth_test()
    except SlackApiError as error:
        return [
            Check(
                FAIL,
                f"Slack refused SLACK_BOT_TOKEN ({slack_error(error)})",
                "set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-…) from your app's "
                "OAuth & Permissions page",
            )
        ]
    except SLACK_ERRORS as error:
        return [
            Check(
                FAIL,
                f"Slack could not be reached at {settings.slack_api_url} ({slack_error(error)})",
                "check SLACK_API_URL (leave it unset for slack.com) and the network",
            )
        ]
    checks = [
        Check(
            PASS,
            f"Slack: connected as {answer.get('user')} in {answer.get('team')} "
            f"({answer.get('url')})",
        )
    ]
    granted = {s.strip() for s in str(answer.headers.get("x-oauth-scopes", "")).split(",")}
    needed = manifest.bot_scopes()
    if not settings.mention_deployer:  # only the deployer's lookup by email needs these
        needed -= manifest.DEPLOYER_SCOPES
    missing = sorted(needed - granted)
    if missing:
        fix = (
            "add them to the app (manifest.yml has them), then reinstall the app to the "
            "workspace and copy the new token into SLACK_BOT_TOKEN"
        )
        if manifest.DEPLOYER_SCOPES & set(missing):
            fix += (
                " (users:read and users:read.email let a failure's thread mention its "
                "deployer; or set DEPLOYHQ_MENTION_DEPLOYER=false)"
            )
        checks.append(Check(FAIL, f"Slack: the token lacks the scopes {', '.join(missing)}", fix))
    else:
        checks.append(
            Check(
                PASS,
                f"Slack: the token has every scope the bot uses ({', '.join(sorted(needed))})",
            )
        )
    checks += [channel(client, c, granted) for c in sorted(settings.channels)]
    if settings.slack_app_token:
        checks.append(app_token(settings))
    return checks


def channel(client: WebClient, channel_id: str, granted: set[str]) -> Check:
    if not granted & {"channels:read", "groups:read"}:
        return Check(
            NOTE,
            f"Slack: channel {channel_id} not checked (the token may not read channels); "
            "make sure the bot is invited there (/invite @DeployHQ)",
        )
    try:
        info = client.conversations_info(channel=channel_id)
    except SLACK_ERRORS as error:
        return Check(
            FAIL,
            f"Slack: channel {channel_id}: {slack_error(error)}",
            "check SLACK_CHANNEL / DEPLOYHQ_CHANNELS (channel ids, like C0123456789)",
        )
    details = info.get("channel") or {}
    if not details.get("is_member"):
        return Check(
            FAIL,
            f"Slack: the bot is not in #{details.get('name', channel_id)}",
            f"invite it: in that channel, /invite @DeployHQ ({channel_id})",
        )
    return Check(PASS, f"Slack: the bot is in #{details.get('name', channel_id)}")


def app_token(settings: Settings) -> Check:
    client = WebClient(base_url=settings.slack_api_url, timeout=10)
    try:
        client.apps_connections_open(app_token=settings.slack_app_token or "")
    except SLACK_ERRORS as error:
        return Check(
            FAIL,
            f"Slack refused SLACK_APP_TOKEN for Socket Mode ({slack_error(error)})",
            "set SLACK_APP_TOKEN to an app-level token (Basic Information → App-Level Tokens) "
            "with the connections:write scope, and enable Socket Mode in the app",
        )
    return Check(PASS, "Slack: SLACK_APP_TOKEN opens a Socket Mode connection")


def deployhq(settings: Settings) -> list[Check]:
    client = deployhq_client(settings)
    where = settings.deployhq_base_url
    try:
        projects = client.projects()
    except DeployHQError as error:
        if error.status in (401, 403):
            fix = (
                "check DEPLOYHQ_USERNAME (the user's email) and DEPLOYHQ_API_KEY "
                "(Settings → Security)"
            )
        elif error.status == 404 or error.kind == "connect":
            fix = "check DEPLOYHQ_ACCOUNT (the subdomain of <account>.deployhq.com)"
        else:
            fix = "try again; if it persists, check DeployHQ's status page"
        return [Check(FAIL, f"DeployHQ at {where}: {error.message}", fix)]
    permalinks = {str(p.get("permalink")) for p in projects}
    checks = [
        Check(
            PASS,
            f"DeployHQ: account {settings.deployhq_web_url}; the API key can see "
            f"{len(projects)} project{'s' if len(projects) != 1 else ''}",
        )
    ]
    unknown = sorted(settings.projects - permalinks)
    unknown += sorted(p for p, _ in settings.project_channels if p not in permalinks)
    if unknown:
        checks.append(
            Check(
                FAIL,
                f"DeployHQ: the API key cannot see {', '.join(sorted(set(unknown)))}",
                "check the permalinks in DEPLOYHQ_PROJECTS / DEPLOYHQ_CHANNELS",
            )
        )
    checks.append(
        Check(
            NOTE,
            "DeployHQ: whether the key may retry (not read-only) shows only on a retry; "
            "use `python -m bot notify <project> <deployment>` to try one",
        )
    )
    return checks


def redis(settings: Settings) -> list[Check]:
    if not settings.redis_url:
        return [
            Check(
                NOTE,
                "Redis: REDIS_URL is not set, so the in-process store is in use: one worker "
                "process, and retry locks and cards are forgotten on every restart",
            )
        ]
    parts = urlsplit(settings.redis_url)
    shown = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"
    with WITHOUT_STORE.step("doctor") as missing:
        open_store(settings).ping()
    if (error := missing.error) is not None:
        fix = (
            "set REDIS_TLS_VERIFY=false for a provider with self-signed certificates"
            if error.certificate
            else "check REDIS_URL, and that Redis is running and reachable"
        )
        return [Check(FAIL, f"Redis at {shown}: {error}", fix)]
    return [Check(PASS, f"Redis at {shown} answers")]


def webhook(settings: Settings, *, app_url: str, show_secrets: bool) -> list[Check]:
    base = app_url.rstrip("/") or "https://<your-app>"
    if not settings.deployhq_webhook_secret:
        return [
            Check(
                FAIL,
                'webhook: DEPLOYHQ_WEBHOOK_SECRET is not set, so DeployHQ\'s JSON ("HTTP") '
                "notifications are refused",
                "set DEPLOYHQ_WEBHOOK_SECRET (openssl rand -hex 32), then run doctor again "
                "for the URL to paste into DeployHQ",
            )
        ]
    secret = settings.deployhq_webhook_secret if show_secrets else "<DEPLOYHQ_WEBHOOK_SECRET>"
    parts = urlsplit(base)
    with_auth = f"{parts.scheme}://deployhq:{quote(secret, safe='<>_')}@{parts.netloc}{parts.path}"
    return [
        Check(PASS, "webhook: DEPLOYHQ_WEBHOOK_SECRET is set"),
        Check(
            NOTE,
            f"webhook: in DeployHQ, add an HTTP integration with the URL {with_auth}{WEBHOOK_PATH}"
            + ("" if show_secrets else " (--show-secrets prints the secret)"),
        ),
    ]
