"""``python -m bot notify``: post the card of a real deployment to its channel, exactly as a
failure notification would, to try Retry without waiting for a failure."""

from __future__ import annotations

import sys

from bot.config import ConfigError, Settings
from bot.deployhq.client import DeployHQError
from bot.runtime.connections import deployhq_client
from bot.web.wiring import build


def run(project: str, deployment_id: str, channel: str | None) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    deployhq = deployhq_client(settings)
    try:
        record = deployhq.deployment(project, deployment_id)
    except DeployHQError as error:
        print(f"DeployHQ: {error.message}", file=sys.stderr)
        return 1
    target = channel or settings.channel_for(record.project_permalink)
    if target not in settings.channels:
        print(f"{target} is not SLACK_CHANNEL or a channel in DEPLOYHQ_CHANNELS", file=sys.stderr)
        return 1
    if settings.redis_url is None:
        # The server keeps its cards in its own process then: this card would be unknown to it.
        print(
            "REDIS_URL is not set, so the running bot cannot know of a card posted from here: "
            "its buttons would say it names no card, and later notifications would post another. "
            "Set REDIS_URL to the server's, or send the deployment's notification to the bot "
            "instead (python -m bot doctor prints the webhook URL).",
            file=sys.stderr,
        )
        return 1
    # The bot as the server builds it, not started: the card is pushed right here, and its
    # failure looked up before the command ends (its pools are drained).
    bot = build(settings, deployhq=deployhq)
    try:
        card = bot.cards.post_record(record, target)
    finally:
        bot.pools.close(wait=True)
    if card is None or not card.drawn:
        print("Slack did not take the card; the log above says why.", file=sys.stderr)
        return 1
    print(
        f"Posted the card of {record.project_name} {record.short_id} ({record.status}) "
        f"to {card.channel} as message {card.ts}."
    )
    return 0
