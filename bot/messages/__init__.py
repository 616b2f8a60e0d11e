"""What the bot says, as pure functions with no I/O, by audience.

- ``card``: the card itself, the one message that tracks a deployment.
- ``notes``: the short replies in a card's thread, one per thing that happened.
- ``replies``: what a person is told after a click or a ``/deployhq`` command.
- ``text``: escaping, mentions, times and the Block Kit text objects they all use.

Text from outside (project and branch names, commit messages, DeployHQ's reasons) is escaped
and every mrkdwn object is ``verbatim``, so it shows as text: it cannot mention anyone, name a
channel or turn into a link. The only links are our own, and those go in button ``url`` fields.
"""
