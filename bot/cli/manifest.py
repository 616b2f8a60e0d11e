"""The Slack app manifest (``manifest.yml``), rendered for one address or for Socket Mode."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"
PLACEHOLDER = "https://your-app.example.com"


def text() -> str:
    return MANIFEST.read_text()


# The bot events the manifest subscribes to (the App Home's).
HOME_EVENTS = frozenset({"app_home_opened"})


def bot_events() -> frozenset[str]:
    """The events under ``settings.event_subscriptions.bot_events``."""
    events, inside = set(), False
    for line in text().splitlines():
        stripped = line.split("#", 1)[0].strip()
        if stripped == "bot_events:":
            inside = True
        elif inside and stripped.startswith("- "):
            events.add(stripped[2:].strip())
        elif inside and stripped:
            inside = False
    return frozenset(events)


def home_tab() -> bool:
    """Whether the manifest turns the Home tab on."""
    return any(line.strip() == "home_tab_enabled: true" for line in text().splitlines())


# What looking a failure's deployer up by email needs (DEPLOYHQ_MENTION_DEPLOYER).
DEPLOYER_SCOPES = frozenset({"users:read", "users:read.email"})


def bot_scopes() -> frozenset[str]:
    """The bot scopes the manifest asks for (the list under ``oauth_config.scopes.bot``)."""
    scopes, inside = set(), False
    for line in text().splitlines():
        stripped = line.split("#", 1)[0].strip()
        if stripped == "bot:":
            inside = True
        elif inside and stripped.startswith("- "):
            scopes.add(stripped[2:].strip())
        elif inside and stripped:
            inside = False
    return frozenset(scopes)


def render(base_url: str | None = None, *, socket_mode: bool = False) -> str:
    """The manifest with every request URL under ``base_url``; or, for Socket Mode, with no
    request URLs and ``socket_mode_enabled: true``. Ready to paste into Create New App."""
    body = [line for line in text().splitlines() if not line.startswith("#")]
    if socket_mode:
        kept = []
        for line in body:
            value = line.split(":", 1)[-1].strip()
            if line.strip().startswith(("url:", "request_url:")) and value.startswith(PLACEHOLDER):
                continue  # Slack's requests arrive over the app's WebSocket instead
            kept.append(line.replace("socket_mode_enabled: false", "socket_mode_enabled: true"))
        head = "# Socket Mode: set SLACK_APP_TOKEN (xapp-…, connections:write) as well."
        return head + "\n" + "\n".join(kept) + "\n"
    if base_url is None:
        raise ValueError("a base URL is needed, like https://deploy-bot.example.com")
    parts = urlsplit(base_url)
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"the base URL must be https://<host>[/path], not {base_url!r}")
    rendered = "\n".join(body).replace(PLACEHOLDER, base_url.rstrip("/"))
    return f"# Slack app manifest for {base_url.rstrip('/')}\n{rendered}\n"
