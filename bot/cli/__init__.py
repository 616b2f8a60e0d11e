"""The command line, ``python -m bot`` (``main``): ``doctor`` checks a setup against the real
services, ``manifest`` prints the Slack app manifest, ``notify`` posts a real deployment's card.
Each parses its arguments in ``main`` and calls its own module."""
