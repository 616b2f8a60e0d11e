"""Settings, read once from the environment; the only module that looks at ``os.environ``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bot.deployhq.deployment import is_permalink

DEFAULT_SLACK_API_URL = "https://slack.com/api/"

# DeployHQ's key for its signed "HTTP POST" notifications, as printed on that integration's page.
DEPLOYHQ_PUBLIC_KEY = """\
-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDXJcP2N6NtcN26Q8nVaidXOA0w
RxWK2HQTblIaQdGRDjqTvhrSlFuV5N4jz7w/w8uskP20G7ZQ+CkHwIXrWk76KZJn
pdoOHPO6AqRmEFgV5Q6Y1CR77mvnT9O21hTnfzfyyiAdQC2oO8M9/jeLRPTAqmkG
xdQa8iepUz4BwrrHmwIDAQAB
-----END PUBLIC KEY-----
"""

_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,30}")
_ACCOUNT = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_SLACK_ID_LIST = re.compile(r"[A-Z0-9]{2,30}")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

# The values `.env.example` ships with. A setting still holding one was never filled in, so it
# counts as unset: otherwise the bot starts "healthy" and fails on the first Slack request.
PLACEHOLDERS = {
    "SLACK_BOT_TOKEN": "xoxb-your-bot-token",
    "SLACK_SIGNING_SECRET": "your-signing-secret",
    "SLACK_CHANNEL": "C0123456789",
    "DEPLOYHQ_ACCOUNT": "your-account",
    "DEPLOYHQ_USERNAME": "you@example.com",
    "DEPLOYHQ_API_KEY": "your-40-character-api-key",
}


class ConfigError(Exception):
    """Every problem found in the settings, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "the bot cannot start; fix these settings:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def is_channel_id(value: str) -> bool:
    return bool(_CHANNEL_ID.fullmatch(value))


@dataclass(frozen=True)
class Settings:
    """What the bot needs to run. Secrets stay out of ``repr``, so never reach a log line."""

    slack_bot_token: str = field(repr=False)
    slack_signing_secret: str = field(repr=False)
    slack_channel: str
    deployhq_account: str
    deployhq_username: str
    deployhq_api_key: str = field(repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    slack_app_token: str | None = field(default=None, repr=False)
    deployhq_base_url: str = ""
    deployhq_webhook_secret: str | None = field(default=None, repr=False)
    deployhq_public_key_pem: str = field(default=DEPLOYHQ_PUBLIC_KEY, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    redis_tls_verify: bool = True
    project_channels: tuple[tuple[str, str], ...] = ()
    projects: frozenset[str] = frozenset()
    action_users: frozenset[str] = frozenset()
    action_usergroups: frozenset[str] = frozenset()
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_token: str | None = field(default=None, repr=False)
    deployhq_timeout: float = 20.0
    slack_timeout: float = 10.0  # seconds one call to Slack's Web API may take
    deployhq_doubt: float | None = None  # DEPLOYHQ_DOUBT_SECONDS; None: derived from the timeout
    reconcile_interval: float = 60.0
    max_delivery_age: float = 24 * 3600.0
    socket_mode_ping_interval: float = 5.0
    socket_mode_ping_timeout: float = 10.0
    socket_mode_health_grace: float = 60.0
    mention_deployer: bool = True  # a failure's thread mentions its deployer, by exact email
    what_changed: bool = True  # a failure's thread lists its commits and DeployHQ's overview
    pause_auto_deploy: bool = True  # a failure card offers Pause auto-deploy when it is on
    # Four eyes: actions on these servers or groups (names in lower case, identifiers, or "*")
    # wait for an approver who is not the requester.
    approval_servers: frozenset[str] = frozenset()
    approvers_users: frozenset[str] = frozenset()
    approvers_usergroups: frozenset[str] = frozenset()
    # A test's switch, no setting of the bot's (not in SETTINGS, nor the docs): the point
    # between an action's steps where this process kills itself (BOT_FAILPOINT), and the folder
    # its processes share to fire it once (BOT_FAILPOINT_DIR). See runtime/failpoints.py.
    failpoint: str = ""
    failpoint_dir: str = ""
    approval_minutes: float = 30.0
    preview_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not self.deployhq_base_url:
            object.__setattr__(self, "deployhq_base_url", self.deployhq_web_url)

    @property
    def deployhq_web_url(self) -> str:
        """Where people open deployments in a browser (the API may be proxied elsewhere)."""
        return f"https://{self.deployhq_account}.deployhq.com"

    @property
    def deployhq_timeouts(self) -> tuple[float, float]:
        """(connect, read) seconds for DeployHQ calls."""
        return min(3.05, self.deployhq_timeout), self.deployhq_timeout

    @property
    def action_claim_seconds(self) -> float:
        """How long a claim lasts before its call goes out: one DeployHQ call (a hard
        deadline) plus room for Redis and Slack. It is renewed before each call; once the call
        is about to go out the claim is marked sending and lasts until DeployHQ's record
        settles it, so only a process that dies before sending frees a failure this way."""
        return self.deployhq_timeout + 4.0

    @property
    def action_doubt_seconds(self) -> float:
        """How long an action whose answer was lost is looked for in DeployHQ's record, from
        the moment it was lost, before the bot concludes DeployHQ never queued it."""
        if self.deployhq_doubt is not None:
            return self.deployhq_doubt
        return max(60.0, 3 * self.deployhq_timeout)

    def channel_for(self, project: str) -> str:
        """Where a project's cards go: its DEPLOYHQ_CHANNELS entry, else SLACK_CHANNEL."""
        return dict(self.project_channels).get(project, self.slack_channel)

    @property
    def channels(self) -> frozenset[str]:
        """Every channel cards may go to; a webhook's ?channel= must name one of them."""
        return frozenset({self.slack_channel, *(c for _, c in self.project_channels)})

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value the bot holds, for scrubbing anything that might be printed."""
        values = [
            self.slack_bot_token,
            self.slack_app_token or "",
            self.metrics_token or "",
            self.slack_signing_secret,
            self.deployhq_api_key,
            self.deployhq_webhook_secret or "",
            (urlsplit(self.redis_url).password or "") if self.redis_url else "",
        ]
        return tuple(v for v in values if len(v) >= 4)

    def warnings(self) -> list[str]:
        """Settings that work but will surprise someone; logged once at start-up."""
        found = []
        if not self.deployhq_webhook_secret:
            found.append(
                'DEPLOYHQ_WEBHOOK_SECRET is not set: JSON ("HTTP") notifications from DeployHQ '
                'will be refused with 403 until it is; signed "HTTP POST" ones are accepted'
            )
        # app.json sets it for Heroku Redis, whose URL may be plain redis:// (nothing to verify).
        if self.redis_url and self.redis_url.startswith("rediss://") and not self.redis_tls_verify:
            found.append(
                "REDIS_TLS_VERIFY=false: Redis's TLS certificate is not verified (traffic is "
                "still encrypted); use this only for providers with self-signed certificates"
            )
        if self.approval_servers and not (self.approvers_users or self.approvers_usergroups):
            found.append(
                "DEPLOYHQ_APPROVAL_SERVERS is set but nobody may approve: every action on those "
                "servers is refused until DEPLOYHQ_APPROVERS_USERS or "
                "DEPLOYHQ_APPROVERS_USERGROUPS names someone"
            )
        return found

    @property
    def deployhq_public_key(self) -> RSAPublicKey:
        key = load_pem_public_key(self.deployhq_public_key_pem.encode())
        assert isinstance(key, RSAPublicKey)  # checked in from_env
        return key

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting (``SETTINGS``); raise ``ConfigError`` naming all
        problems at once."""
        env = os.environ if environ is None else environ
        problems: list[str] = []
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            name = setting.given_as(env)
            raw = env.get(name, "").strip()
            if raw == PLACEHOLDERS.get(name):
                raw = ""  # still .env.example's: never filled in
            if setting.required and not raw:
                still = " (it still holds .env.example's placeholder)" if env.get(name) else ""
                problems.append(f"{name} is not set{still}: {setting.required}")
                continue
            try:
                values[setting.field] = setting.read(name, raw)
            except Problem as problem:
                problems.extend(problem.messages)
        if problems:
            raise ConfigError(problems)
        failpoint = env.get("BOT_FAILPOINT", ""), env.get("BOT_FAILPOINT_DIR", "")
        return cls(**values, failpoint=failpoint[0], failpoint_dir=failpoint[1])


class Problem(Exception):
    """A setting's value that cannot be used, and why (one message per fault)."""

    def __init__(self, *messages: str) -> None:
        super().__init__(*messages)
        self.messages = list(messages)


@dataclass(frozen=True)
class Setting:
    """One environment variable: the ``Settings`` field it fills, how it is read (the value as
    given, "" when unset, to the field's value, or ``Problem``), what it is (also in
    ``.env.example``, ``app.json`` and the docs, which a test holds to it), and, when it must be
    set, where it comes from. ``formerly``: the names it had before, still read when it is
    not set under its own."""

    env: str
    field: str
    read: Callable[[str, str], Any]
    help: str
    required: str = ""
    formerly: tuple[str, ...] = ()

    def given_as(self, env: Mapping[str, str]) -> str:
        """The name the setting is given under: its own, else the first former name set."""
        if env.get(self.env, "").strip():
            return self.env
        return next((old for old in self.formerly if env.get(old, "").strip()), self.env)


def _text(name: str, value: str) -> str:
    return value


def _optional(name: str, value: str) -> str | None:
    return value or None


def _bot_token(name: str, value: str) -> str:
    if not value.startswith("xoxb-"):
        raise Problem("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    return value


def _channel(name: str, value: str) -> str:
    if not is_channel_id(value):
        raise Problem(
            f"SLACK_CHANNEL must be a channel id like C0123456789, not {value!r} "
            "(open the channel's details in Slack to copy it)"
        )
    return value


def _account(name: str, value: str) -> str:
    account = value.lower()
    if not _ACCOUNT.fullmatch(account):
        raise Problem(f"DEPLOYHQ_ACCOUNT must be the subdomain only (e.g. 'acme'), not {account!r}")
    return account


def _app_token(name: str, value: str) -> str | None:
    if value and not value.startswith("xapp-"):
        raise Problem(
            "SLACK_APP_TOKEN must be an app-level token starting with xapp- (Basic "
            "Information → App-Level Tokens, with the connections:write scope)"
        )
    return value or None


def _slack_api_url(name: str, value: str) -> str:
    url = value or DEFAULT_SLACK_API_URL
    if not _is_http_url(url):
        raise Problem(f"SLACK_API_URL must be an http(s) URL, not {url!r}")
    return url if url.endswith("/") else url + "/"


def _base_url(name: str, value: str) -> str:
    url = value.rstrip("/")
    if url and not _is_http_url(url):
        raise Problem(f"DEPLOYHQ_BASE_URL must be an http(s) URL, not {url!r}")
    return url


def _public_key(name: str, value: str) -> str:
    pem = value.replace("\\n", "\n") or DEPLOYHQ_PUBLIC_KEY
    try:
        if not isinstance(load_pem_public_key(pem.encode()), RSAPublicKey):
            raise Problem("DEPLOYHQ_PUBLIC_KEY must be an RSA public key")
    except ValueError:
        raise Problem("DEPLOYHQ_PUBLIC_KEY is not a PEM public key") from None
    return pem


def _redis_url(name: str, value: str) -> str | None:
    if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise Problem("REDIS_URL must start with redis://, rediss:// or unix://")
    return value or None


def _boolean(name: str, value: str) -> bool:
    found = _BOOLEANS.get((value or "true").lower())
    if found is None:
        raise Problem(f"{name} must be true or false")
    return found


def _project_channels(name: str, value: str) -> tuple[tuple[str, str], ...]:
    pairs, bad = [], []
    for pair in _id_list(value):
        project, _, channel = (part.strip() for part in pair.partition("="))
        if is_permalink(project) and is_channel_id(channel):
            pairs.append((project, channel))
        else:
            bad.append(
                "DEPLOYHQ_CHANNELS must be project=channel pairs separated by commas, like "
                f"my-project=C0123456789; bad: {pair!r}"
            )
    if bad:
        raise Problem(*bad)
    return tuple(sorted(pairs))


def _projects(name: str, value: str) -> frozenset[str]:
    projects = _id_list(value)
    bad = sorted(p for p in projects if not is_permalink(p))
    if bad:
        raise Problem(
            f"DEPLOYHQ_PROJECTS must list project permalinks separated by commas; bad: {bad}"
        )
    return projects


def _servers(name: str, value: str) -> frozenset[str]:
    """Servers or server groups by name (any case) or identifier, or ``*`` for all."""
    named = frozenset(part.lower() for part in _id_list(value))
    if "*" in named and len(named) > 1:
        raise Problem(f"{name} is * (every server) or a list of servers, not both")
    return named


def _approval_minutes(name: str, value: str) -> float:
    given = value or "30"
    try:
        minutes = float(given)
    except ValueError:
        minutes = 0.0
    if not 0.05 <= minutes <= 24 * 60:  # from 3 seconds to a day
        raise Problem(f"{name} must be minutes from 0.05 to 1440, not {given!r}")
    return minutes


def _slack_ids(name: str, value: str) -> frozenset[str]:
    ids = _id_list(value)
    bad = sorted(i for i in ids if not _SLACK_ID_LIST.fullmatch(i))
    if bad:
        raise Problem(f"{name} must list Slack ids separated by commas; bad: {bad}")
    return ids


def _deployhq_timeout(name: str, value: str) -> float:
    timeout = value or "20"
    try:
        seconds = float(timeout)
    except ValueError:
        seconds = 0.0
    if not 1 <= seconds <= 120:
        raise Problem(f"DEPLOYHQ_TIMEOUT must be seconds from 1 to 120, not {timeout!r}")
    return seconds


def _between(default: str, low: float, high: float) -> Callable[[str, str], float]:
    """Seconds (``90``, ``15m``, …) from ``low`` to ``high``; ``default`` when unset."""

    def read(name: str, value: str) -> float:
        seconds = _seconds(value or default)
        if seconds is None or not low <= seconds <= high:
            raise Problem(f"{name} must be seconds from {low:g} to {high:g}")
        return seconds

    return read


_slack_timeout = _between("10", 1, 60)
_reconcile_interval = _between("60", 0.2, 3600)
_ping_interval = _between("5", 0.1, 60)
_ping_timeout = _between("10", 0.1, 60)
_health_grace = _between("60", 1, 3600)
_preview_seconds = _between("60", 1, 600)


def _doubt(name: str, value: str) -> float | None:
    seconds = _seconds(value or "0")
    if seconds is None or not (seconds == 0 or 1 <= seconds <= 3600):
        raise Problem("DEPLOYHQ_DOUBT_SECONDS must be seconds from 1 to 3600")
    return seconds or None


def _max_delivery_age(name: str, value: str) -> float:
    seconds = _seconds(value or "24h")
    if seconds is None or seconds < 60:
        raise Problem(
            "DEPLOYHQ_MAX_DELIVERY_AGE must be a duration of a minute or more, like 24h, "
            "90m or 3600 (seconds)"
        )
    return seconds


def _log_format(name: str, value: str) -> str:
    found = (value or "text").lower()
    if found not in ("text", "json"):
        raise Problem("LOG_FORMAT must be text (the default) or json")
    return found


def _metrics_token(name: str, value: str) -> str | None:
    if value and len(value) < 16:
        raise Problem("METRICS_TOKEN must be at least 16 characters (openssl rand -hex 32)")
    return value or None


def _log_level(name: str, value: str) -> str:
    level = (value or "INFO").upper()
    if level not in _LOG_LEVELS:
        raise Problem(f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
    return level


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "SLACK_BOT_TOKEN",
        "slack_bot_token",
        _bot_token,
        (
            "Bot User OAuth Token (xoxb-…): your Slack app → OAuth & Permissions, after Install "
            "to Workspace."
        ),
        required="the bot token, xoxb-…, from the app's OAuth page",
    ),
    Setting(
        "SLACK_SIGNING_SECRET",
        "slack_signing_secret",
        _text,
        "Your Slack app → Basic Information → Signing Secret.",
        required="from the app's Basic Information page",
    ),
    Setting(
        "SLACK_CHANNEL",
        "slack_channel",
        _channel,
        (
            "Id of the channel for failure cards (C…): channel details → About, at the bottom. "
            "Invite the bot there."
        ),
        required="the id of the channel for failure notifications",
    ),
    Setting(
        "DEPLOYHQ_ACCOUNT",
        "deployhq_account",
        _account,
        "Your DeployHQ subdomain: acme for acme.deployhq.com.",
        required="your DeployHQ subdomain: <account>.deployhq.com",
    ),
    Setting(
        "DEPLOYHQ_USERNAME",
        "deployhq_username",
        _text,
        "Email of the DeployHQ user whose API key the bot uses.",
        required="the email of the DeployHQ API user",
    ),
    Setting(
        "DEPLOYHQ_API_KEY",
        "deployhq_api_key",
        _text,
        "That user's API key: DeployHQ → Settings → Security. A read-only key cannot retry.",
        required="that user's API key, Settings → Security",
    ),
    Setting(
        "SLACK_APP_TOKEN",
        "slack_app_token",
        _app_token,
        (
            "Optional: an app-level token (xapp-…, connections:write) to take Slack's requests "
            "over Socket Mode instead of at a public URL."
        ),
    ),
    Setting(
        "SLACK_API_URL",
        "slack_api_url",
        _slack_api_url,
        "Optional: Slack's Web API base URL, only for GovSlack (default https://slack.com/api/).",
    ),
    Setting(
        "DEPLOYHQ_BASE_URL",
        "deployhq_base_url",
        _base_url,
        "Optional: reach DeployHQ's API through another address (a proxy).",
    ),
    Setting(
        "DEPLOYHQ_PUBLIC_KEY",
        "deployhq_public_key_pem",
        _public_key,
        "Optional: PEM that replaces DeployHQ's built-in key for signed HTTP POST notifications.",
    ),
    Setting(
        "REDIS_URL",
        "redis_url",
        _redis_url,
        (
            "Redis, for one action across processes (set by the Redis add-on); unset: an "
            "in-process store and one worker."
        ),
    ),
    Setting(
        "REDIS_TLS_VERIFY",
        "redis_tls_verify",
        _boolean,
        (
            "Heroku Redis's certificate is self-signed, so it is not verified (the connection is "
            "still TLS)."
        ),
    ),
    Setting(
        "DEPLOYHQ_MENTION_DEPLOYER",
        "mention_deployer",
        _boolean,
        (
            "true (default): a failure's thread mentions the Slack member whose email is exactly "
            "the DeployHQ deployer's; false: never."
        ),
    ),
    Setting(
        "DEPLOYHQ_WHAT_CHANGED",
        "what_changed",
        _boolean,
        (
            "true (default): a failure's thread lists the commits since the last good "
            "deployment, with DeployHQ's overview; false: no commit is read or shown."
        ),
    ),
    Setting(
        "DEPLOYHQ_PAUSE_AUTO_DEPLOY",
        "pause_auto_deploy",
        _boolean,
        (
            "true (default): a failure card shows its server's automatic deployments, with "
            "Pause auto-deploy (or Resume) and who paused them; false: cards never read them "
            "(/deployhq freeze and the App Home still do)."
        ),
    ),
    Setting(
        "DEPLOYHQ_CHANNELS",
        "project_channels",
        _project_channels,
        (
            "Optional: a channel per project, as project=channel pairs "
            "(my-project=C0123,other=C0456); other projects use SLACK_CHANNEL."
        ),
    ),
    Setting(
        "DEPLOYHQ_PROJECTS",
        "projects",
        _projects,
        (
            "Optional: the only projects the bot acts on (permalinks, comma-separated); "
            "notifications and commands about others are refused."
        ),
    ),
    Setting(
        "DEPLOYHQ_ACTION_USERS",
        "action_users",
        _slack_ids,
        (
            "Optional: Slack user ids (U…) who may act (retry, roll back, deploy, abort); unset "
            "lets anyone in the channel."
        ),
        formerly=("DEPLOYHQ_RETRY_ALLOWED_USERS",),
    ),
    Setting(
        "DEPLOYHQ_ACTION_USERGROUPS",
        "action_usergroups",
        _slack_ids,
        "Optional: Slack user-group ids (S…) whose members may act.",
        formerly=("DEPLOYHQ_RETRY_ALLOWED_USERGROUPS",),
    ),
    Setting(
        "DEPLOYHQ_APPROVAL_SERVERS",
        "approval_servers",
        _servers,
        (
            "Optional: servers or server groups (names or identifiers, comma-separated, or * for "
            "all) whose Retry, Roll back and Deploy latest wait for a second person's Approve."
        ),
    ),
    Setting(
        "DEPLOYHQ_APPROVERS_USERS",
        "approvers_users",
        _slack_ids,
        "Optional: Slack user ids (U…) who may approve an action on those servers.",
    ),
    Setting(
        "DEPLOYHQ_APPROVERS_USERGROUPS",
        "approvers_usergroups",
        _slack_ids,
        "Optional: Slack user-group ids (S…) whose members may approve.",
    ),
    Setting(
        "DEPLOYHQ_APPROVAL_MINUTES",
        "approval_minutes",
        _approval_minutes,
        "Optional: minutes a request for approval stays open (default 30, 0.05-1440).",
    ),
    Setting(
        "DEPLOYHQ_PREVIEW_SECONDS",
        "preview_seconds",
        _preview_seconds,
        "Optional: seconds a preview is followed closely before the person hears it is still "
        "preparing (default 60, 1-600).",
    ),
    Setting(
        "DEPLOYHQ_TIMEOUT",
        "deployhq_timeout",
        _deployhq_timeout,
        "Seconds to wait for DeployHQ's answer (1–120).",
    ),
    Setting(
        "SLACK_TIMEOUT",
        "slack_timeout",
        _slack_timeout,
        (
            "Optional: seconds one call to Slack's Web API may take (default 10, 1-60); a card's "
            "push holds it 5 s longer."
        ),
    ),
    Setting(
        "DEPLOYHQ_DOUBT_SECONDS",
        "deployhq_doubt",
        _doubt,
        (
            "Optional: how long an action whose answer was lost is looked for in DeployHQ's "
            "record before it counts as never queued (default: 3 x DEPLOYHQ_TIMEOUT, at least "
            "60)."
        ),
    ),
    Setting(
        "RECONCILE_INTERVAL",
        "reconcile_interval",
        _reconcile_interval,
        (
            "Seconds between checks of every open card against DeployHQ (lost notifications, "
            "in-doubt retries, refused Slack updates)."
        ),
    ),
    Setting(
        "DEPLOYHQ_MAX_DELIVERY_AGE",
        "max_delivery_age",
        _max_delivery_age,
        (
            "Notifications of failures older than this (24h, 90m, or seconds) get no card: a "
            "replayed delivery cannot offer Retry."
        ),
    ),
    Setting(
        "SOCKET_MODE_PING_INTERVAL",
        "socket_mode_ping_interval",
        _ping_interval,
        (
            "Optional, with SLACK_APP_TOKEN: seconds between pings on the Socket Mode connection "
            "(default 5)."
        ),
    ),
    Setting(
        "SOCKET_MODE_PING_TIMEOUT",
        "socket_mode_ping_timeout",
        _ping_timeout,
        (
            "Optional, with SLACK_APP_TOKEN: seconds without a pong before the connection is "
            "replaced (default 10)."
        ),
    ),
    Setting(
        "SOCKET_MODE_HEALTH_GRACE",
        "socket_mode_health_grace",
        _health_grace,
        (
            "Optional, with SLACK_APP_TOKEN: seconds a worker may be without a connection before "
            "/healthz answers 503 (default 60)."
        ),
    ),
    Setting(
        "LOG_FORMAT",
        "log_format",
        _log_format,
        "text (readable, the default) or json (one JSON object a line, for log drains).",
    ),
    Setting(
        "METRICS_TOKEN",
        "metrics_token",
        _metrics_token,
        (
            "Serves Prometheus metrics at /metrics to requests bearing Authorization: Bearer "
            "<METRICS_TOKEN>; generated for you."
        ),
    ),
    Setting(
        "LOG_LEVEL",
        "log_level",
        _log_level,
        "DEBUG, INFO, WARNING or ERROR.",
    ),
    Setting(
        "DEPLOYHQ_WEBHOOK_SECRET",
        "deployhq_webhook_secret",
        _optional,
        (
            "Shared secret DeployHQ's integration sends as its HTTP Basic auth password; "
            "generated for you."
        ),
    ),
)


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _seconds(value: str) -> float | None:
    """``90``, ``90s``, ``15m``, ``24h`` or ``2d`` as seconds; None when it is none of those."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (value[:-1], units[value[-1]]) if value[-1:] in units else (value, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        return None
    return seconds if seconds == seconds and seconds >= 0 else None


def _id_list(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())
