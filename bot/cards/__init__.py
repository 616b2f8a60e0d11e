"""A deployment's card: its states and pure rules, its record and store, how every change reaches
Slack (outbox, publisher), why it failed, and the reconciler."""
