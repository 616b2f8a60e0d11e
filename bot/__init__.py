"""deployhq-slack-bot: DeployHQ deployment failures as Slack cards with a Retry button."""
