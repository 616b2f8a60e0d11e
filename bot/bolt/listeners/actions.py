"""Button clicks. Each is acknowledged at once; the action runs after the answer has left."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from slack_bolt import Ack, App, BoltContext, Respond

from bot.actions.auto_deploy import AutoDeploys
from bot.actions.decisions import Seen
from bot.actions.on_card import ON_CARD, CardActions
from bot.actions.parts import ActionParts
from bot.actions.permissions import Tell
from bot.actions.pipeline import ActionResult, Pipeline
from bot.actions.previews import Previews
from bot.messages import notes, replies
from bot.messages.text import notice
from bot.runtime.background import Background
from bot.store.kv import WithoutStore
from bot.words.actions import PAUSE, RESUME, spec_of
from bot.words.buttons import (
    APPROVE_ACTION,
    DENY_ACTION,
    OPEN_ACTION,
    PREVIEW_DEPLOY_ACTION,
    PREVIEW_ORDER_ACTION,
    PREVIEW_ROLLBACK_ACTION,
)

log = logging.getLogger(__name__)
# What a missing store means to a click or a command, decided here: the person is told the store
# is unavailable, and nothing is done.
WITHOUT_STORE = WithoutStore("bolt", {"answer": "the person is told; nothing is done"})


@dataclass(frozen=True)
class Click:
    """What a button press says, from what Bolt hands a listener (its ``action`` and
    ``context``): who pressed it, and the value the button carries."""

    user_id: str
    value: str

    @classmethod
    def of(cls, action: dict[str, Any], context: BoltContext) -> Click:
        return cls(str(context.user_id or ""), str(action.get("value") or ""))


def register(app: App, parts: ActionParts, background: Background) -> None:
    actions, kinds, decisions = parts.pipeline, parts.card_actions, parts.decisions

    def on(name: str, label: str) -> Any:
        def click(ack: Ack, action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
            ack()  # the answer leaves when this returns; the action itself runs after it
            pressed = Click.of(action, context)
            log.info("%s clicked by %s", label, pressed.user_id)
            background.run(f"{name} click", clicked, actions, kinds, name, pressed, respond)

        return click

    for name in ON_CARD:  # Retry, Roll back, Deploy latest, Abort, as the table names them
        spec = spec_of(name)
        app.action(spec.button)(on(spec.name, spec.label))

    _register_auto_deploys(app, actions, parts.autos, background)

    def decide(approve: bool) -> Any:
        def click(
            ack: Ack,
            action: dict[str, Any],
            context: BoltContext,
            body: dict[str, Any],
            respond: Respond,
        ) -> None:
            ack()
            pressed = Click.of(action, context)
            log.info("%s pressed by %s", "Approve" if approve else "Deny", pressed.user_id)
            decision = decisions.approve if approve else decisions.deny
            seen = seen_of(body)  # where it was pressed: the message Slack showed
            background.run("approval decision", decided, decision, pressed, respond, seen)

        return click

    app.action(APPROVE_ACTION)(decide(True))
    app.action(DENY_ACTION)(decide(False))

    def preview(action_id: str) -> Any:
        def click(ack: Ack, action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
            ack()  # a preview never acts: no confirm, and nothing claimed
            pressed = Click.of(action, context)
            log.info("Preview (%s) pressed by %s", action_id, pressed.user_id)
            background.run("preview", previewed, parts.previews, action_id, pressed, respond)

        return click

    for action_id in (PREVIEW_ROLLBACK_ACTION, PREVIEW_DEPLOY_ACTION, PREVIEW_ORDER_ACTION):
        app.action(action_id)(preview(action_id))
    # A link button still reports its click; answer it so Slack shows no error.
    app.action(OPEN_ACTION)(acknowledge)


def _register_auto_deploys(
    app: App, actions: Pipeline, autos: AutoDeploys, background: Background
) -> None:
    """Pause auto-deploy and Resume auto-deploy."""

    def auto_deploy(label: str, on: bool) -> Any:
        def click(ack: Ack, action: dict[str, Any], context: BoltContext, respond: Respond) -> None:
            ack()
            pressed = Click.of(action, context)
            log.info("%s clicked by %s", label, pressed.user_id)
            background.run(f"{label} click", auto_clicked, actions, autos, pressed, respond, on)

        return click

    for spec in (spec_of(PAUSE), spec_of(RESUME)):
        app.action(spec.button)(auto_deploy(spec.label, spec.name == RESUME))


def clicked(
    actions: Pipeline, kinds: CardActions, action: str, pressed: Click, respond: Respond
) -> None:
    """Act on what the clicked button names, answering the clicker privately when the card
    cannot show the outcome."""
    user_id, value = pressed.user_id, pressed.value

    def note(text: str) -> None:
        tell(respond, text)

    try:
        made = kinds.decode(action, value)
    except ValueError as exc:
        log.warning("%s click by %s with an unreadable button: %s", action, user_id, exc)
        tell(respond, replies.unreadable_button(action))
        return
    result = actions.run(made, user_id, note)
    told_privately(respond, result)


def auto_clicked(
    actions: Pipeline,
    autos: AutoDeploys,
    pressed: Click,
    respond: Respond,
    on: bool,
) -> None:
    """Pause (``on`` False) or resume the automatic deployments the clicked button names: the
    button pressed says which, and a value that says otherwise changes nothing."""
    user_id, value = pressed.user_id, pressed.value
    try:
        change = autos.decode(value, on)
    except ValueError as exc:
        log.warning("auto-deploy click by %s with an unreadable button: %s", user_id, exc)
        tell(respond, replies.unreadable_auto_deploy_button())
        return
    told_privately(respond, actions.run(change, user_id, lambda text: tell(respond, text)))


def previewed(previews: Previews, action_id: str, pressed: Click, respond: Respond) -> None:
    """Ask DeployHQ for a preview of what the pressed button's action would change."""
    user_id, value = pressed.user_id, pressed.value

    def note(text: str) -> None:
        tell(respond, text)

    subject = None
    try:
        with WITHOUT_STORE.step("answer", user_id) as store:
            if action_id == PREVIEW_ORDER_ACTION:
                subject = previews.of_order(value, note)
            else:
                subject = previews.of_card(action_id, value, note)
    except ValueError as exc:
        log.warning("preview by %s with an unreadable button: %s", user_id, exc)
        note(replies.preview_out_of_date())
        return
    if store.missing:
        note(replies.store_unavailable())
        return
    if subject is not None:
        previews.press(subject, user_id, note)


def decided(
    decision: Callable[[str, str, Tell, Seen], ActionResult],
    pressed: Click,
    respond: Respond,
    seen: Seen,
) -> None:
    """Approve or Deny a request by the id its button carries (which names nothing else)."""
    result = decision(pressed.value, pressed.user_id, lambda text: tell(respond, text), seen)
    told_privately(respond, result)


_PAGE = re.compile(r"/projects/([^/?#]+)/deployments/([0-9A-Za-z-]{1,64})(?:[/?#]|$)")


def seen_of(body: dict[str, Any]) -> Seen:
    """The message a decision was pressed on, as Slack sent it: where it is, the request its
    Approve button carries, and the deployment its Open in DeployHQ link names (a card)."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    elements = [
        e
        for b in message.get("blocks") or []
        if isinstance(b, dict) and b.get("type") == "actions"
        for e in b.get("elements") or []
        if isinstance(e, dict)
    ]
    approve = next((e for e in elements if e.get("action_id") == APPROVE_ACTION), {})
    opened = next((e for e in elements if e.get("action_id") == OPEN_ACTION), {})
    found = _PAGE.search(str(opened.get("url") or ""))
    return Seen(
        channel=str(container.get("channel_id") or ""),
        ts=str(container.get("message_ts") or ""),
        request=str(approve.get("value") or ""),
        project=unquote(found.group(1)) if found else "",
        deployment=found.group(2) if found else "",
    )


def told_privately(respond: Respond, result: ActionResult) -> None:
    """An outcome no view showed (there was no card, say) goes to the person who asked."""
    if result.state is not None and not (result.card_updated or result.told):
        said = notes.outcome_note(result.state, result.deployment)
        if said:
            tell(respond, said)


def acknowledge(ack: Ack) -> None:
    ack()


def tell(respond: Respond, mrkdwn: str) -> None:
    """A private note to whoever clicked; a failure to send it is logged, never raised."""
    try:
        respond(response_type="ephemeral", replace_original=False, **notice(mrkdwn))
    except Exception:
        log.exception("could not send a private note through the response URL")
