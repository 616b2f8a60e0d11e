"""The App Home: every project's open failures, paused automatic deployments and 30-day
figures, and the bot's own health, gathered (``overview``) for a pure builder
(``messages.home``)."""
