"""Settings, read once from the environment; the only module that looks at ``os.environ``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    retry_allowed_users: frozenset[str] = frozenset()
    retry_allowed_usergroups: frozenset[str] = frozenset()
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
    def retry_lock_seconds(self) -> float:
        """How long a claim lasts before its call goes out: one DeployHQ call (a hard
        deadline) plus room for Redis and Slack. It is renewed before each call; once the call
        is about to go out the claim is marked sending and lasts until DeployHQ's record
        settles it, so only a process that dies before sending frees a failure this way."""
        return self.deployhq_timeout + 4.0

    @property
    def retry_doubt_seconds(self) -> float:
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
        return found

    @property
    def deployhq_public_key(self) -> RSAPublicKey:
        key = load_pem_public_key(self.deployhq_public_key_pem.encode())
        assert isinstance(key, RSAPublicKey)  # checked in from_env
        return key

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; raise ``ConfigError`` naming all problems at once."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def get(name: str) -> str:
            value = env.get(name, "").strip()
            return "" if value == PLACEHOLDERS.get(name) else value

        def required(name: str, meaning: str) -> str:
            value = get(name)
            if not value:
                still = " (it still holds .env.example's placeholder)" if env.get(name) else ""
                problems.append(f"{name} is not set{still}: {meaning}")
            return value

        token = required("SLACK_BOT_TOKEN", "the bot token, xoxb-…, from the app's OAuth page")
        if token and not token.startswith("xoxb-"):
            problems.append("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        signing_secret = required("SLACK_SIGNING_SECRET", "from the app's Basic Information page")
        channel = required("SLACK_CHANNEL", "the id of the channel for failure notifications")
        if channel and not is_channel_id(channel):
            problems.append(
                f"SLACK_CHANNEL must be a channel id like C0123456789, not {channel!r} "
                "(open the channel's details in Slack to copy it)"
            )
        account = required("DEPLOYHQ_ACCOUNT", "your DeployHQ subdomain: <account>.deployhq.com")
        account = account.lower()
        if account and not _ACCOUNT.fullmatch(account):
            problems.append(
                f"DEPLOYHQ_ACCOUNT must be the subdomain only (e.g. 'acme'), not {account!r}"
            )
        username = required("DEPLOYHQ_USERNAME", "the email of the DeployHQ API user")
        api_key = required("DEPLOYHQ_API_KEY", "that user's API key, Settings → Security")

        app_token = get("SLACK_APP_TOKEN") or None
        if app_token and not app_token.startswith("xapp-"):
            problems.append(
                "SLACK_APP_TOKEN must be an app-level token starting with xapp- (Basic "
                "Information → App-Level Tokens, with the connections:write scope)"
            )
        slack_api_url = get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
        if not _is_http_url(slack_api_url):
            problems.append(f"SLACK_API_URL must be an http(s) URL, not {slack_api_url!r}")
        elif not slack_api_url.endswith("/"):
            slack_api_url += "/"
        base_url = get("DEPLOYHQ_BASE_URL").rstrip("/")
        if base_url and not _is_http_url(base_url):
            problems.append(f"DEPLOYHQ_BASE_URL must be an http(s) URL, not {base_url!r}")

        public_key = get("DEPLOYHQ_PUBLIC_KEY").replace("\\n", "\n") or DEPLOYHQ_PUBLIC_KEY
        try:
            if not isinstance(load_pem_public_key(public_key.encode()), RSAPublicKey):
                problems.append("DEPLOYHQ_PUBLIC_KEY must be an RSA public key")
        except ValueError:
            problems.append("DEPLOYHQ_PUBLIC_KEY is not a PEM public key")

        redis_url = get("REDIS_URL") or None
        if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            problems.append("REDIS_URL must start with redis://, rediss:// or unix://")
        tls_verify = _BOOLEANS.get((get("REDIS_TLS_VERIFY") or "true").lower())
        if tls_verify is None:
            problems.append("REDIS_TLS_VERIFY must be true or false")
        mention_deployer = _BOOLEANS.get((get("DEPLOYHQ_MENTION_DEPLOYER") or "true").lower())
        if mention_deployer is None:
            problems.append("DEPLOYHQ_MENTION_DEPLOYER must be true or false")

        project_channels = []
        for pair in _id_list(get("DEPLOYHQ_CHANNELS")):
            project, _, project_channel = (part.strip() for part in pair.partition("="))
            if is_permalink(project) and is_channel_id(project_channel):
                project_channels.append((project, project_channel))
            else:
                problems.append(
                    "DEPLOYHQ_CHANNELS must be project=channel pairs separated by commas, like "
                    f"my-project=C0123456789; bad: {pair!r}"
                )
        projects = _id_list(get("DEPLOYHQ_PROJECTS"))
        bad_projects = sorted(p for p in projects if not is_permalink(p))
        if bad_projects:
            problems.append(
                f"DEPLOYHQ_PROJECTS must list project permalinks separated by commas; bad: "
                f"{bad_projects}"
            )

        users = _id_list(get("DEPLOYHQ_RETRY_ALLOWED_USERS"))
        groups = _id_list(get("DEPLOYHQ_RETRY_ALLOWED_USERGROUPS"))
        for name, ids in (
            ("DEPLOYHQ_RETRY_ALLOWED_USERS", users),
            ("DEPLOYHQ_RETRY_ALLOWED_USERGROUPS", groups),
        ):
            bad = sorted(i for i in ids if not _SLACK_ID_LIST.fullmatch(i))
            if bad:
                problems.append(f"{name} must list Slack ids separated by commas; bad: {bad}")

        timeout = get("DEPLOYHQ_TIMEOUT") or "20"
        try:
            deployhq_timeout = float(timeout)
        except ValueError:
            deployhq_timeout = 0.0
        if not 1 <= deployhq_timeout <= 120:
            problems.append(f"DEPLOYHQ_TIMEOUT must be seconds from 1 to 120, not {timeout!r}")

        slack_timeout = _seconds(get("SLACK_TIMEOUT") or "10")
        if slack_timeout is None or not 1 <= slack_timeout <= 60:
            problems.append("SLACK_TIMEOUT must be seconds from 1 to 60")

        doubt = _seconds(get("DEPLOYHQ_DOUBT_SECONDS") or "0")
        if doubt is None or not (doubt == 0 or 1 <= doubt <= 3600):
            problems.append("DEPLOYHQ_DOUBT_SECONDS must be seconds from 1 to 3600")

        reconcile_interval = _seconds(get("RECONCILE_INTERVAL") or "60")
        if reconcile_interval is None or not 0.2 <= reconcile_interval <= 3600:
            problems.append("RECONCILE_INTERVAL must be seconds from 0.2 to 3600")
        max_age = _seconds(get("DEPLOYHQ_MAX_DELIVERY_AGE") or "24h")
        if max_age is None or max_age < 60:
            problems.append(
                "DEPLOYHQ_MAX_DELIVERY_AGE must be a duration of a minute or more, like 24h, "
                "90m or 3600 (seconds)"
            )

        ping_interval = _seconds(get("SOCKET_MODE_PING_INTERVAL") or "5")
        if ping_interval is None or not 0.1 <= ping_interval <= 60:
            problems.append("SOCKET_MODE_PING_INTERVAL must be seconds from 0.1 to 60")
        ping_timeout = _seconds(get("SOCKET_MODE_PING_TIMEOUT") or "10")
        if ping_timeout is None or not 0.1 <= ping_timeout <= 60:
            problems.append("SOCKET_MODE_PING_TIMEOUT must be seconds from 0.1 to 60")
        health_grace = _seconds(get("SOCKET_MODE_HEALTH_GRACE") or "60")
        if health_grace is None or not 1 <= health_grace <= 3600:
            problems.append("SOCKET_MODE_HEALTH_GRACE must be seconds from 1 to 3600")

        log_format = (get("LOG_FORMAT") or "text").lower()
        if log_format not in ("text", "json"):
            problems.append("LOG_FORMAT must be text (the default) or json")
        metrics_token = get("METRICS_TOKEN") or None
        if metrics_token and len(metrics_token) < 16:
            problems.append("METRICS_TOKEN must be at least 16 characters (openssl rand -hex 32)")

        log_level = (get("LOG_LEVEL") or "INFO").upper()
        if log_level not in _LOG_LEVELS:
            problems.append(f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")

        webhook_secret = get("DEPLOYHQ_WEBHOOK_SECRET") or None

        if problems:
            raise ConfigError(problems)
        return cls(
            slack_bot_token=token,
            slack_signing_secret=signing_secret,
            slack_channel=channel,
            deployhq_account=account,
            deployhq_username=username,
            deployhq_api_key=api_key,
            slack_api_url=slack_api_url,
            slack_app_token=app_token,
            deployhq_base_url=base_url,
            deployhq_webhook_secret=webhook_secret,
            deployhq_public_key_pem=public_key,
            redis_url=redis_url,
            redis_tls_verify=bool(tls_verify),
            project_channels=tuple(sorted(project_channels)),
            projects=projects,
            retry_allowed_users=users,
            retry_allowed_usergroups=groups,
            log_level=log_level,
            log_format=log_format,
            metrics_token=metrics_token,
            deployhq_timeout=deployhq_timeout,
            deployhq_doubt=doubt or None,
            slack_timeout=slack_timeout or 10.0,
            reconcile_interval=reconcile_interval or 60.0,
            max_delivery_age=max_age or 86400.0,
            socket_mode_ping_interval=ping_interval or 5.0,
            socket_mode_ping_timeout=ping_timeout or 10.0,
            socket_mode_health_grace=health_grace or 60.0,
            mention_deployer=bool(mention_deployer),
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
