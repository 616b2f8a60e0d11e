"""DeployHQ as the bot reads it: the API client, its answers and deadline, the deployment value,
the servers' history, and its notifications."""
