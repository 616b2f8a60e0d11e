"""Text helpers every message uses: outside text escaped, times in the reader's time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, TypedDict

from bot.words.actions import spec_of

Block = dict[str, Any]

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")


class Message(TypedDict):
    text: str
    blocks: list[Block]


def notice(mrkdwn: str) -> Message:
    """A short message; ``mrkdwn`` is ours, with any outside text in it escaped."""
    return {"text": mrkdwn, "blocks": [{"type": "section", "text": mrkdwn_text(mrkdwn, 3000)}]}


def notes_message(notes: tuple[str, ...] | list[str]) -> Message:
    """Several short messages said as one (a thread's notes posted together): a section each."""
    return {
        "text": "\n\n".join(notes)[:40000],
        "blocks": [{"type": "section", "text": mrkdwn_text(note, 3000)} for note in notes],
    }


def escape(text: str) -> str:
    """Slack's three control characters, so outside text can never become markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> str:
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id) else escape(user_id)


def duration_text(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def when(moment: datetime) -> str:
    """A time each reader sees in their own time zone, with a UTC fallback."""
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def ago(moment: datetime) -> str:
    """How long ago, as each reader's Slack says it ("2 hours ago"), with a UTC fallback."""
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{ago}}|{fallback}>"


def outside(text: str, limit: int) -> str:
    """Text from outside, shortened then escaped (shortening after could split an entity)."""
    return escape(clip(text, limit))


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain_text(text: str, limit: int) -> Block:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def action_button(name: str) -> Block:
    """The start of action ``name``'s button: its action_id and label, as the table of actions
    declares them."""
    spec = spec_of(name)
    return {"type": "button", "action_id": spec.button, "text": plain_text(spec.label, 75)}


def mrkdwn_text(text: str, limit: int) -> Block:
    return {"type": "mrkdwn", "text": clip(text, limit), "verbatim": True}
