"""One action, whatever breaks: ``python -m bench.one_action``.

For every action (Retry, Roll back, Deploy latest, Abort, and ``/deployhq deploy``'s confirmed
order, shown as ``order``), runs one case through every fault the pipeline must survive
(tests/support/crash.py): the first clicker's process SIGKILLed at each step, the answer lost
after DeployHQ did the work (a timeout, a proxy's 504, a dropped connection), Redis flushed
after the action, and DeployHQ's clock ten minutes ahead or behind. Two instances of the bot
(the Procfile's gunicorn) share a Redis; people click the card as it first looked (or press
the confirm again), on both, until it settles. Prints what DeployHQ did in each case (it must
be 1), what it was asked, how the card ended and how long it took.
"""

from __future__ import annotations

import logging
import platform
import sys

from tests.support.crash import ACTIONS, FAULTS, STEPS, run


def main() -> int:
    logging.disable(logging.CRITICAL)  # the fakes' access logs
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{'action':9} {'fault':22} {'done':>4} {'asked':>5} {'s':>5}  card")
    wrong = 0
    for action in ACTIONS:
        cases = [(f"SIGKILL at {step}", step, None) for step in STEPS]
        cases += [(fault, None, fault) for fault in FAULTS]
        for name, step, fault in cases:
            outcome = run(action, step, fault)
            wrong += outcome.actions != 1
            card = outcome.card.split(" <!date")[0][:40]
            print(
                f"{action:9} {name:22} {outcome.actions:>4} {outcome.asked:>5} "
                f"{outcome.seconds:5.1f}  {card}",
                flush=True,
            )
    print(f"cases with other than one action: {wrong}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
