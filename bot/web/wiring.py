"""The one place the bot is put together: ``build(settings, …)`` makes every part and hands
each to the next, in the order a click, a webhook and a card redraw pass through them; nothing
is assigned after it is made. The web app (``web.factory``), the command line (``cli``) and the
tests all use it; ``Bot.start`` starts what runs in the background.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.actions.approvals import Approvals, Gate, Posts
from bot.actions.auto_deploy import AutoDeploys
from bot.actions.decisions import Decisions, Redraw, rebuilder
from bot.actions.deploy import ChannelMessages, DeployOrders
from bot.actions.deploy_plan import Deploys
from bot.actions.kept import Kept
from bot.actions.on_card import CardActions
from bot.actions.parts import ActionParts
from bot.actions.permissions import AccessPolicy
from bot.actions.pipeline import Pipeline
from bot.actions.previews import Previews, Timing
from bot.actions.reconcile import Reconciler
from bot.actions.settle import Settler
from bot.bolt.app import build_app
from bot.bolt.listeners import home as home_listeners
from bot.cards.auto_deploys import AutoDeployLookup, AutoDeployments
from bot.cards.changes import Cards
from bot.cards.deliveries import Deliveries
from bot.cards.explain import Explainer
from bot.cards.home import Home
from bot.cards.lookups import Lookups
from bot.cards.outbox import Outbox
from bot.cards.publisher import Publisher
from bot.cards.what_changed import RecentCommits, WhatChanged
from bot.config import Settings
from bot.deployhq.client import DeployHQ
from bot.deployhq.notifications import WebhookAuth
from bot.runtime import failpoints
from bot.runtime.background import Pools
from bot.runtime.connections import deployhq_client, open_store
from bot.slack.client import slack_client, slack_poster
from bot.slack.identity import Identity
from bot.slack.members import Deployers
from bot.slack.socket_mode import SocketMode
from bot.store.shared import Store
from bot.web.webhook import Webhook


@dataclass(frozen=True)
class Bot:
    """Every part of one running bot (one per worker process)."""

    settings: Settings
    store: Store
    pools: Pools
    cards: Cards
    reconciler: Reconciler
    actions: Pipeline
    identity: Identity
    bolt: App
    verifier: SignatureVerifier
    webhook: Webhook
    socket_mode: SocketMode | None

    def start(self) -> Bot:
        """Start what works in the background: who the bot is, the reconciler, Socket Mode."""
        self.identity.start()
        self.reconciler.start()
        if self.socket_mode is not None:
            self.socket_mode.start()
        return self

    def stop(self) -> None:
        """Stop the background work, dropping what has not started."""
        self.reconciler.stop()
        self.pools.close(wait=False)
        if self.socket_mode is not None:
            self.socket_mode.close()


def build(
    settings: Settings,
    *,
    client: WebClient | None = None,
    store: Store | None = None,
    deployhq: DeployHQ | None = None,
    pools: Pools | None = None,
) -> Bot:
    """Make the whole bot; collaborators not given are made from ``settings``."""
    failpoints.arm(settings.failpoint, settings.failpoint_dir)
    slack = _Slack(client or slack_client(settings), client or slack_poster(settings))
    kept = Kept.of(store or open_store(settings), settings.action_claim_seconds)
    deployhq = deployhq or deployhq_client(settings, kept.pauses)
    pools = pools or Pools.create()
    lists = AutoDeployments(deployhq, kept.answers, kept.ledger)
    publisher, outbox, cards = _cards(settings, slack, kept, deployhq, pools, lists)
    parts = _action_parts(settings, slack, kept, deployhq, cards, pools, lists)
    reconciler = Reconciler(kept, cards, outbox, deployhq, parts, settings.reconcile_interval)
    identity = Identity(slack.client, settings.slack_bot_token)
    bolt = build_app(settings, slack.client, identity, parts, deployhq, pools)
    webhook = Webhook(
        settings,
        auth=WebhookAuth(settings.deployhq_webhook_secret, settings.deployhq_public_key),
        policy=parts.policy,
        cards=cards,
        publisher=publisher,
        slack=pools.slack,
        ledger=kept.ledger,
    )
    socket_mode = SocketMode(bolt, settings, slack.client) if settings.slack_app_token else None
    home = Home(
        slack.client,
        kept,
        kept.cards,
        deployhq,
        lists,
        projects=settings.projects,
        policy=parts.policy,
        socket_mode=socket_mode,
    )
    home_listeners.register(bolt, home, pools.commands)  # the Home tab reports Socket Mode too
    verifier = SignatureVerifier(settings.slack_signing_secret)
    return Bot(
        settings,
        kept,
        pools,
        cards,
        reconciler,
        parts.pipeline,
        identity,
        bolt,
        verifier,
        webhook,
        socket_mode,
    )


def _action_parts(
    settings: Settings,
    slack: _Slack,
    kept: Kept,
    deployhq: DeployHQ,
    cards: Cards,
    pools: Pools,
    lists: AutoDeployments,
) -> ActionParts:
    """Every action's part: the pipeline, and what runs through it or beside it."""
    policy = _policy(settings, slack.client, kept)
    card_actions = CardActions(deployhq, cards)
    autos = AutoDeploys(deployhq, cards, kept.claims, lists)
    messages = ChannelMessages(slack.poster, slack.client, settings.slack_channel)
    orders = DeployOrders(deployhq, kept.orders, messages)
    settler = Settler(kept.claims)
    gate = _gate(settings, slack.client, kept, deployhq)
    posts = Posts(messages, slack.client, settings.channel_for)  # requests no card shows
    pipeline = _pipeline(settings, kept, settler, policy, gate, pools, posts)
    redraw = Redraw(deployhq, cards, messages, settings.projects)  # a request the store lost
    rebuild = rebuilder(card_actions, orders, autos)
    decisions = Decisions(pipeline, gate, kept.claims, kept.requests, rebuild, posts, redraw)
    deploys, previews = _deploys(settings, kept, deployhq, cards, policy, pools)
    return ActionParts(
        pipeline, policy, card_actions, orders, autos, decisions, deploys, previews, settler
    )


def _policy(settings: Settings, client: WebClient, store: Kept) -> AccessPolicy:
    """Who may act, on which projects."""
    return AccessPolicy(
        settings.action_users,
        settings.action_usergroups,
        client=client,
        cache=store.usergroups,
        projects=settings.projects,
    )


def _pipeline(
    settings: Settings,
    store: Kept,
    settler: Settler,
    policy: AccessPolicy,
    gate: Gate,
    pools: Pools,
    posts: Posts,
) -> Pipeline:
    """The one pipeline every action runs through."""
    return Pipeline(
        store.claims,
        settler,
        policy=policy,
        approvals=Approvals(gate, store.claims, store.requests, posts) if gate.on else None,
        rechecks=pools.actions,
        doubt_seconds=settings.action_doubt_seconds,
        deadline_seconds=settings.deployhq_timeout,
    )


def _deploys(
    settings: Settings,
    store: Kept,
    deployhq: DeployHQ,
    cards: Cards,
    policy: AccessPolicy,
    pools: Pools,
) -> tuple[Deploys, Previews]:
    """What /deployhq deploy offers, and the Previews of it and of the card's actions."""
    recent = RecentCommits(deployhq, store.answers) if settings.what_changed else None
    deploys = Deploys(deployhq, store.orders, recent)
    previews = Previews(
        deployhq,
        cards,
        store.cards,
        deploys,
        store.holds,
        policy,
        pools.lookups,
        Timing.of(settings.preview_seconds),
    )
    return deploys, previews


def _gate(settings: Settings, client: WebClient, store: Kept, deployhq: DeployHQ) -> Gate:
    """Four eyes: which servers need a second person, and who may approve."""
    approvers = AccessPolicy(
        settings.approvers_users,
        settings.approvers_usergroups,
        client=client,
        cache=store.usergroups,
    )
    return Gate(settings.approval_servers, approvers, deployhq, minutes=settings.approval_minutes)


@dataclass(frozen=True)
class _Slack:
    client: WebClient  # retries what is safe to retry
    poster: WebClient  # never re-sends a post by itself


def _cards(
    settings: Settings,
    slack: _Slack,
    store: Kept,
    deployhq: DeployHQ,
    pools: Pools,
    lists: AutoDeployments,
) -> tuple[Publisher, Outbox, Cards]:
    """A card: its record first (cards), then Slack (outbox → publisher), then why it failed."""
    deliveries = Deliveries(
        store.cards, max_delivery_age=timedelta(seconds=settings.max_delivery_age)
    )
    publisher = Publisher(
        slack.client,
        store.cards,
        deliveries,
        settings.deployhq_web_url,
        deployhq=deployhq,
        poster=slack.poster,
        slack_timeout=settings.slack_timeout,
    )
    deployers = Deployers(slack.client, store.deployers) if settings.mention_deployer else None
    explainer = Explainer(deployhq, store.cards, deployers, Lookups(deployhq, store.answers))
    told = None
    if settings.what_changed:
        recent = RecentCommits(deployhq, store.answers)
        told = WhatChanged(deployhq, store.cards, recent, settings.deployhq_web_url)
    outbox = Outbox(
        publisher,
        explainer,
        slack=pools.slack,
        lookups=pools.lookups,
        what_changed=told,
        auto_deploys=AutoDeployLookup(lists, store.cards) if settings.pause_auto_deploy else None,
    )
    return publisher, outbox, Cards(store.cards, deliveries, outbox)
