"""The WSGI app: its factory and routes, DeployHQ's webhook, the health check, and the wiring that
makes every part of the bot once."""
