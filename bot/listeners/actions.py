"""Button clicks. Each is acknowledged at once; the work runs after the answer has left."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot import messages
from bot.retries import Retries
from bot.routing import OPEN_ACTION, RETRY_ACTION, RetryTarget

log = logging.getLogger(__name__)


def register(app: App, retries: Retries) -> None:
    def retry_clicked(body: dict[str, Any], respond: Respond) -> None:
        user_id = str((body.get("user") or {}).get("id", ""))
        actions = body.get("actions") or [{}]
        try:
            target = RetryTarget.decode(str(actions[0].get("value", "")))
        except ValueError as exc:
            log.warning("retry click by %s with an unreadable button: %s", user_id, exc)
            tell(respond, "This button no longer names a deployment; nothing was retried.")
            return
        result = retries.retry(target, user_id, lambda text: tell(respond, text))
        if result.state is not None and not result.card_updated:
            tell(respond, messages.retry_note(result.state, result.deployment))

    app.action(RETRY_ACTION)(ack=acknowledge, lazy=[retry_clicked])
    # A link button still reports its click; answer it so Slack shows no error.
    app.action(OPEN_ACTION)(acknowledge)


def acknowledge(ack: Ack) -> None:
    ack()


def tell(respond: Respond, mrkdwn: str) -> None:
    """A private note to whoever clicked; a failure to send it is logged, never raised."""
    try:
        respond(response_type="ephemeral", replace_original=False, **messages.notice(mrkdwn))
    except Exception:
        log.exception("could not send a private note through the response URL")
