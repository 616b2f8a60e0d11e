"""The table of actions (bot/words/actions.py) is the one place an action is declared: what the
card draws, what Bolt listens for, what is counted and what a button decodes all come from it,
and a name it lacks fails loudly everywhere."""

from __future__ import annotations

import pytest

from bot import metrics
from bot.actions.on_card import ON_CARD, CardActions
from bot.messages.text import action_button
from bot.words.actions import ACTIONS, TABLE, UnknownAction, spec_of
from bot.words.buttons import (
    APPROVE_ACTION,
    DENY_ACTION,
    OPEN_ACTION,
    PREVIEW_DEPLOY_ACTION,
    AbortTarget,
    ActionTarget,
    AutoDeployTarget,
    DeployTarget,
    RollbackTarget,
)

RUN = "11111111-2222-3333-4444-555555555555"
SAMPLES = {
    ActionTarget: ActionTarget("web", RUN, f"{RUN}:1"),
    RollbackTarget: RollbackTarget("web", RUN, f"{RUN}:1", RUN),
    DeployTarget: DeployTarget("web", RUN, f"{RUN}:1", "abc123"),
    AbortTarget: AbortTarget("web", RUN, f"{RUN}:abort:{RUN}:0", RUN, 0),
    AutoDeployTarget: AutoDeployTarget("web", "srv-1", False, RUN),
}


def test_each_action_is_declared_once_with_a_button_a_counter_and_what_its_button_carries():
    assert len({spec.name for spec in TABLE}) == len(TABLE) == len(ACTIONS)
    buttons = [spec.button for spec in TABLE]
    assert len(set(buttons)) == len(buttons)
    assert not set(buttons) & {APPROVE_ACTION, DENY_ACTION, OPEN_ACTION, PREVIEW_DEPLOY_ACTION}
    for spec in TABLE:
        assert spec.label and spec.metric in metrics.ACTIONS, spec
        sample = SAMPLES[spec.target]
        assert spec.target.decode(sample.encode()) == sample


def test_every_action_on_a_card_is_in_the_table_and_decodes_what_its_button_carries():
    actions = CardActions(deployhq=None, cards=None)  # type: ignore[arg-type]
    for name, kind in ON_CARD.items():
        spec = spec_of(name)
        made = actions.decode(name, SAMPLES[spec.target].encode())
        assert type(made) is kind and made.name == name


@pytest.mark.parametrize("name", ["", "Retry", "reboot", "pause"])
def test_a_name_no_card_action_has_fails_loudly_instead_of_becoming_a_retry(name: str):
    actions = CardActions(deployhq=None, cards=None)  # type: ignore[arg-type]
    value = SAMPLES[ActionTarget].encode()
    with pytest.raises(ValueError):
        actions.decode(name, value)
    with pytest.raises(UnknownAction):
        actions.of(SAMPLES[ActionTarget], name)


def test_each_button_is_drawn_as_the_table_names_it():
    for spec in TABLE:
        drawn = action_button(spec.name)
        assert drawn["action_id"] == spec.button and drawn["text"]["text"] == spec.label
