"""A deployment's card: its pure rules, its record and store, how every change reaches Slack
(outbox, publisher), why it failed, what changed, and the App Home."""
