"""A fake Socket Mode endpoint: a real WebSocket server on 127.0.0.1 that sends envelopes as
Slack does and records what the app sends back (acks carry the envelope's id)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from websockets.sync.server import ServerConnection, serve

from tests.support.redis_server import free_port


class FakeSocketMode:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/link"
        self.received: list[dict[str, Any]] = []
        self._connections: list[ServerConnection] = []
        self._lock = threading.Lock()
        self._server = serve(self._handle, "127.0.0.1", self.port)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self._connections.append(connection)
        connection.send(json.dumps({"type": "hello", "num_connections": 1}))
        for message in connection:
            with self._lock:
                self.received.append(json.loads(message))

    def wait_connected(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not self._connections:
            if time.monotonic() > deadline:
                raise AssertionError("the app never connected over Socket Mode")
            time.sleep(0.02)

    def send(self, envelope_type: str, payload: dict[str, Any]) -> str:
        envelope_id = f"env-{time.monotonic_ns()}"
        envelope = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "accepts_response_payload": envelope_type == "slash_commands",
            "payload": payload,
        }
        with self._lock:
            connection = self._connections[-1]
        connection.send(json.dumps(envelope))
        return envelope_id

    def ack(self, envelope_id: str, timeout: float = 5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for message in self.received:
                    if message.get("envelope_id") == envelope_id:
                        return message
            time.sleep(0.01)
        raise AssertionError(f"no ack for {envelope_id}; received {self.received}")

    def stop(self) -> None:
        self._server.shutdown()
