"""One action, whatever breaks (tests/support/crash.py runs each case).

For every action (Retry, Roll back, Deploy latest, Abort, /deployhq deploy's confirm, and Pause
auto-deploy): the
first clicker's process SIGKILLed at each step of the action pipeline (claim taken; preflight
read; "sending" marked; call sent but not answered; answer received; claim finished; card
saved), and the answer lost after DeployHQ did the work (a timeout, a proxy's 504 page, a
dropped connection), Redis flushed after the action, DeployHQ's clock ten minutes ahead and
behind. Each case runs two instances of the Procfile's gunicorn on one Redis; the card as it
first looked (or the confirm) is clicked on both until it settles. DeployHQ must have done
exactly one action, and the card (or the channel's message) must end on what DeployHQ did.
The cases mostly wait (for leases to lapse), so they run three at a time: on two cores, each
case's two gunicorns, fakes and Redis keep some room for their deadlines.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support.crash import ACTIONS, DONE, FAULTS, STEPS, Outcome, run

CASES = [
    (action, step, fault)
    for action in ACTIONS
    for step, fault in [(step, None) for step in STEPS] + [(None, fault) for fault in FAULTS]
]


def test_every_crash_and_lost_answer_ends_in_exactly_one_action_and_a_true_card():
    with ThreadPoolExecutor(3) as pool:
        outcomes: list[Outcome] = list(pool.map(lambda case: run(*case), CASES))

    table = "\n".join(
        f"{action:9} {step or fault:12} did {o.actions} asked {o.asked}: {o.card[:60]}"
        for (action, step, fault), o in zip(CASES, outcomes, strict=True)
    )
    wrong = [
        (case, o)
        for case, o in zip(CASES, outcomes, strict=True)
        if o.actions != 1 or DONE[case[0]] not in o.card
    ]
    # What went wrong first, with the end of what those bots printed; then the whole table.
    told = "\n".join(
        f"{action} {step or fault}: did {o.actions}, card {o.card[:80]!r}\n" + _gist(o.output)
        for (action, step, fault), o in wrong
    )
    assert wrong == [], f"{told}\n\n{table}"


def _gist(output: str) -> str:
    """What the bots printed of a case gone wrong: every warning and error, then the end."""
    lines = output.splitlines()
    marked = [line for line in lines if " WARNING " in line or " ERROR " in line]
    return "\n".join([*marked[-40:], "…", *lines[-25:]])
