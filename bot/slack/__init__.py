"""Slack: the Bolt app and its adapter, the Web API clients, the bot's identity, Socket Mode, the
listeners, and what buttons and commands carry."""
