"""Reading the cards the bot posted to the fake Slack."""

from __future__ import annotations

from typing import Any


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's buttons by action id."""
    found: dict[str, dict[str, Any]] = {}
    for block in message.get("blocks", []):
        if block.get("type") == "actions":
            for element in block["elements"]:
                found[element["action_id"]] = element
    return found


def retry_value(message: dict[str, Any]) -> str:
    return str(buttons(message)["deployhq_retry"]["value"])


def state_line(message: dict[str, Any]) -> str:
    for block in message["blocks"]:
        if block["type"] == "context":
            return str(block["elements"][0]["text"])
    raise AssertionError("no state line")


def first_card(slack: Any) -> dict[str, Any]:
    """The first card the bot posted, once it has (the bot posts after answering the webhook)."""
    posted: dict[str, Any] = slack.wait_for(
        lambda: next((m for m in slack.api_calls("chat.postMessage") if "thread_ts" not in m), None)
    )
    return posted


def updates(slack: Any, text: str) -> list[dict[str, Any]]:
    """The card updates whose state line says ``text``."""
    return [u for u in slack.api_calls("chat.update") if text in state_line(u)]


def headers(slack: Any) -> list[str]:
    """Each card update's header, in order."""
    return [u["blocks"][0]["text"]["text"] for u in slack.api_calls("chat.update")]


def thread(slack: Any, ts: str | None = None) -> list[dict[str, Any]]:
    """The thread replies posted (under the card ``ts``, when given)."""
    return [
        m
        for m in slack.api_calls("chat.postMessage")
        if "thread_ts" in m and (ts is None or m["thread_ts"] == ts)
    ]


def told(slack: Any, key: str) -> str:
    """Everything said privately through one response URL, as one text."""
    return " ".join(str(r.get("text")) for r in slack.responses(key))
