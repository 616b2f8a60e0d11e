"""``python -m bot notify``: post the card of a real deployment to its channel, exactly as a
failure notification would, to try Retry without waiting for a failure."""

from __future__ import annotations

import sys

from bot.cards.changes import Cards
from bot.cards.deliveries import Deliveries
from bot.cards.explain import Explainer
from bot.cards.outbox import Outbox
from bot.cards.publisher import Publisher
from bot.config import ConfigError, Settings
from bot.deployhq.client import DeployHQError
from bot.runtime.background import Inline
from bot.runtime.connections import deployhq_client, open_store
from bot.slack.client import slack_client, slack_poster
from bot.slack.members import Deployers


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
    stores = open_store(settings)
    store = stores.cards
    deliveries = Deliveries(store)
    client = slack_client(settings)
    deployers = Deployers(client, stores.deployers) if settings.mention_deployer else None
    publisher = Publisher(
        client,
        store,
        deliveries,
        settings.deployhq_web_url,
        deployhq=deployhq,
        poster=slack_poster(settings),
        slack_timeout=settings.slack_timeout,
    )
    # No pools in a one-shot command: the card is pushed, and its failure looked up, right here.
    outbox = Outbox(
        publisher, Explainer(deployhq, store, deployers), slack=Inline(), lookups=Inline()
    )
    cards = Cards(store, deliveries, outbox)
    card = cards.post_record(record, target)
    if card is None or not card.drawn:
        print("Slack did not take the card; the log above says why.", file=sys.stderr)
        return 1
    print(
        f"Posted the card of {record.project_name} {record.short_id} ({record.status}) "
        f"to {card.channel} as message {card.ts}."
    )
    return 0
