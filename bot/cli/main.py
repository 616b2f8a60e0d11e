"""``python -m bot``: the arguments of each command, parsed, and the command run."""

from __future__ import annotations

import argparse

from bot.cli import doctor, manifest, notify


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

    posting = commands.add_parser(
        "notify", help="post the card of a real deployment, as a failure notification would"
    )
    posting.add_argument("project", help="the project's permalink")
    posting.add_argument("deployment", help="the deployment's identifier")
    posting.add_argument("--channel", help="a channel id (default: the project's channel)")

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
    return notify.run(args.project, args.deployment, args.channel)
