"""DeployHQ's reads for drawing cards, shared across a burst of failures and across processes.

Each answer is kept briefly under a name (one read per project, branch or commit, however many
failures ask at once), and a lookup DeployHQ refuses for the account (403, 404 or 422: no
repository, no automatic deployments, a feature that is off) is kept as refused for
``REFUSED_SECONDS``: not asked again meanwhile, and logged once, where it was refused, instead of
for every failure. Actions never read through here: what an action checks is read afresh.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from bot.deployhq.client import DeployHQ, DeployHQError
from bot.store.shared import Answers

log = logging.getLogger(__name__)

REFUSED = (403, 404, 422)
REFUSED_SECONDS = 600.0


class Refused(DeployHQError):
    """DeployHQ refused this lookup for the project a moment ago: it was not asked again."""


class Lookups:
    def __init__(self, deployhq: DeployHQ, answers: Answers) -> None:
        self.deployhq = deployhq
        self.answers = answers

    def read(
        self,
        name: tuple[str, ...],
        read: Callable[[], str],
        ttl: float,
        *,
        refusal: tuple[str, ...] | None = None,
    ) -> str:
        """``read()``'s answer, kept under ``name`` for ``ttl`` seconds for every process (a
        burst waits for the first reader's). ``refusal``: what a refusal is remembered under
        (the lookup and its project, by default ``name[:2]``); while one is remembered this
        raises ``Refused`` without asking. ``DeployHQError`` when DeployHQ cannot answer."""
        refusal = refusal or name[:2]
        kept = self.answers.kept("refused", *refusal)
        if kept is not None:
            said = json.loads(kept)
            raise Refused(str(said["message"]), status=int(said["status"]), kind="refused")

        def asked() -> str:
            if (again := self.answers.kept("refused", *refusal)) is not None:  # while it waited
                said = json.loads(again)
                raise Refused(str(said["message"]), status=int(said["status"]), kind="refused")
            try:
                return read()
            except DeployHQError as error:
                if error.status in REFUSED:
                    self.refused(refusal, error)
                raise

        return self.answers.fetch(name, asked, ttl, self.deployhq.deadline + 1.0)

    def refused(self, refusal: tuple[str, ...], error: DeployHQError) -> None:
        """Remember DeployHQ's refusal of a lookup for a while, and say so once."""
        said = {"status": error.status, "message": error.message[:200]}
        self.answers.keep(("refused", *refusal), json.dumps(said), REFUSED_SECONDS)
        what, project = refusal[0], refusal[1] if len(refusal) > 1 else ""
        log.warning(
            "DeployHQ refuses %s for project %s (HTTP %s: %s); not asked again for %d minutes",
            what.replace("-", " "),
            project,
            error.status,
            error.message[:200],
            REFUSED_SECONDS // 60,
        )
