"""Every part of the actions layer, made once by the wiring and handed as one to those that use
them: the Bolt listeners, the slash command and the reconciler."""

from __future__ import annotations

from dataclasses import dataclass

from bot.actions.auto_deploy import AutoDeploys
from bot.actions.decisions import Decisions
from bot.actions.deploy import DeployOrders
from bot.actions.deploy_plan import Deploys
from bot.actions.on_card import CardActions
from bot.actions.permissions import AccessPolicy
from bot.actions.pipeline import Pipeline
from bot.actions.previews import Previews
from bot.actions.settle import Settler


@dataclass(frozen=True)
class ActionParts:
    pipeline: Pipeline  # every action runs through it
    policy: AccessPolicy  # who may act, on which projects
    card_actions: CardActions  # a card's Retry, Roll back, Deploy latest and Abort
    orders: DeployOrders  # /deployhq deploy's confirmed orders
    autos: AutoDeploys  # Pause and Resume auto-deploy, /deployhq freeze and unfreeze
    decisions: Decisions  # a request's Approve or Deny, and its lapse
    deploys: Deploys  # what /deployhq deploy offers for a confirm
    previews: Previews  # what an action would change; never an action
    settler: Settler  # an action in doubt, settled from DeployHQ's record
