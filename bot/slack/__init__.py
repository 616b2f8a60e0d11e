"""Slack as the bot talks to it: the Web API clients and their errors, the bot's identity, a
deployer found by email, and each worker's Socket Mode connection. The Bolt app that listens is
``bot.bolt``."""
