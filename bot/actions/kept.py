"""Everything the bot keeps, as the actions see it: the store's shared records, and the two whose
values belong to a layer above the store (the actions' claims, the cards' records), made on the
same backend. The store itself knows nothing of the layers that use it."""

from __future__ import annotations

from dataclasses import dataclass, fields

from bot.actions.claims import Claims
from bot.cards.store import CardStore
from bot.store.shared import Store


@dataclass(frozen=True)
class Kept(Store):
    """Everything the bot keeps: the shared records, and those whose values belong to a layer above
    the store (the actions' claims, the cards' records), made here on the same backend."""

    claims: Claims
    cards: CardStore

    @classmethod
    def of(cls, store: Store, claim_seconds: float) -> Kept:
        claims = Claims(store.kv, store.keys, lock_seconds=claim_seconds)
        shared = {f.name: getattr(store, f.name) for f in fields(Store)}
        return cls(**shared, claims=claims, cards=CardStore(store.kv, store.keys))
