"""``python -m bot``: check a setup, print the Slack manifest, post a real deployment's card."""

from __future__ import annotations

import argparse
import sys

from bot import doctor, manifest
from bot.config import ConfigError, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="The DeployHQ Slack bot's commands (bin/run serves the bot itself).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    check = commands.add_parser(
        "doctor", help="check the settings against Slack, DeployHQ and Redis, one line a check"
    )
    check.add_argument("--url", default="", help="where the bot is served, for the webhook URL")
    check.add_argument(
        "--show-secrets", action="store_true", help="print the webhook secret in the URL"
    )

    printed = commands.add_parser(
        "manifest", help="print manifest.yml for your address, to paste into Create New App"
    )
    where = printed.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the bot's https:// address")
    where.add_argument(
        "--socket-mode",
        action="store_true",
        help="no request URLs: Slack connects over Socket Mode",
    )

    notify = commands.add_parser(
        "notify", help="post the card of a real deployment, as a failure notification would"
    )
    notify.add_argument("project", help="the project's permalink")
    notify.add_argument("deployment", help="the deployment's identifier")
    notify.add_argument("--channel", help="a channel id (default: the project's channel)")

    args = parser.parse_args(argv)
    if args.command == "manifest":
        try:
            print(manifest.render(args.url, socket_mode=args.socket_mode), end="")
        except ValueError as error:
            parser.error(str(error))
        return 0
    if args.command == "doctor":
        checks = doctor.run(app_url=args.url, show_secrets=args.show_secrets)
        for line in checks:
            print(line)
        failed = sum(1 for c in checks if c.mark == doctor.FAIL)
        print(f"\n{failed} problem{'s' if failed != 1 else ''} found." if failed else "\nAll good.")
        return 1 if failed else 0
    return _notify(args.project, args.deployment, args.channel)


def _notify(project: str, deployment_id: str, channel: str | None) -> int:
    from bot.cards import Cards
    from bot.deployhq import DeployHQError
    from bot.services import deployhq_client, open_store, slack_client, slack_poster

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
    cards = Cards(
        slack_client(settings),
        open_store(settings),
        settings.deployhq_web_url,
        deployhq=deployhq,
        poster=slack_poster(settings),
        slack_timeout=settings.slack_timeout,
    )
    card = cards.post_record(record, target)
    if card is None or not card.drawn:
        print("Slack did not take the card; the log above says why.", file=sys.stderr)
        return 1
    print(
        f"Posted the card of {record.project_name} {record.short_id} ({record.status}) "
        f"to {card.channel} as message {card.ts}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
