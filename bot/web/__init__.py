"""The WSGI app: its factory and routes, DeployHQ's webhook, and the health check."""
