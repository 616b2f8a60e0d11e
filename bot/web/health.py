"""``/healthz``: whether this worker can do its work, for the PaaS's health check."""

from __future__ import annotations

import time

from bot import metrics
from bot.slack.socket_mode import SocketMode
from bot.store.shared import Store
from bot.web.webhook import WITHOUT_STORE


def health(store: Store, socket_mode: SocketMode | None) -> tuple[dict[str, object], int]:
    """200 while the bot can work: the store answers and, with Socket Mode, this worker has
    held a connection to Slack within the last SOCKET_MODE_HEALTH_GRACE seconds."""
    answer: dict[str, object] = {"ok": True, "store": store.backend}
    with WITHOUT_STORE.step("health") as missing:
        store.ping()
    if missing.error is not None:
        answer.update(ok=False, error=str(missing.error))
    if socket_mode is not None:
        state = socket_mode.status()
        answer["socket_mode"] = state.as_json()
        if not state.healthy:
            answer["ok"] = False
            answer.setdefault(
                "error", f"no Socket Mode connection to Slack for {state.down_for:.0f} s"
            )
        workers = metrics.socket_mode_workers()
        if workers:  # every worker of this server, not just the one answering
            now = time.time()
            deaf = [since for since in workers if since and now - since > state.grace]
            answer["socket_mode_workers"] = {
                "workers": len(workers),
                "connected": sum(1 for since in workers if not since),
            }
            if deaf:
                answer["ok"] = False
                answer.setdefault(
                    "error",
                    f"{len(deaf)} of {len(workers)} workers have had no Socket Mode "
                    f"connection for over {state.grace:.0f} s",
                )
    return answer, 200 if answer["ok"] else 503
