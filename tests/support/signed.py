"""Requests signed the way Slack and DeployHQ sign them, and the payloads they carry."""

from __future__ import annotations

import base64
import copy
import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from slack_sdk.signature import SignatureVerifier

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
WEBHOOK_SECRET = "test-webhook-secret-fedcba9876543210"
DEPLOYMENT_ID = "6bd5cdc4-d652-92e8-322f-287929091f03"

# The failure the tests deliver happened a few minutes before the run: DeployHQ's notifications
# are fresh, and the bot refuses ones older than DEPLOYHQ_MAX_DELIVERY_AGE.
# Processes started from here (gunicorn, the benchmark's fakes) inherit the same moment.
FAILED_AT = datetime.fromtimestamp(
    float(
        os.environ.setdefault(
            "TEST_FAILED_AT", str(int((datetime.now(UTC) - timedelta(minutes=10)).timestamp()))
        )
    ),
    UTC,
)


def at(seconds: float) -> str:
    """An ISO time ``seconds`` after the delivered failure's queue time."""
    return (FAILED_AT + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


FAILED_DELIVERY: dict[str, Any] = {
    "identifier": DEPLOYMENT_ID,
    "status": "failed",
    "branch": "main",
    "deployer": "Adam",
    "project": {"name": "My Project", "permalink": "my-project"},
    "start_revision": {"ref": "abc123def456"},
    "end_revision": {"ref": "def456abc789", "message": "Fix login"},
    "timestamps": {
        "queued_at": at(0),
        "started_at": at(2),
        "completed_at": at(70),
        "duration": 68,
    },
    "servers": [{"name": "Production Server", "identifier": "7563d091", "protocol_type": "ssh"}],
}


def delivery(**changes: Any) -> dict[str, Any]:
    """The failed delivery, with top-level fields changed."""
    data = copy.deepcopy(FAILED_DELIVERY)
    data.update(changes)
    return data


def slack_headers(
    body: str,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    content_type: str = "application/x-www-form-urlencoded",
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
        "Content-Type": content_type,
    }


def click_body(
    value: str,
    *,
    response_url: str,
    user_id: str = "U0CLICKER",
    channel: str = "C0DEPLOYS",
    message_ts: str = "1700000000.000001",
    action_id: str = "deployhq_retry",
    blocks: list[dict[str, Any]] | None = None,
) -> str:
    """A button's click, as Slack sends it; ``blocks``: the message's blocks, as Slack sends
    them back (none unless a test needs them)."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": "someone", "team_id": "T1"},
        "team": {"id": "T1", "domain": "example"},
        "api_app_id": "A1",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "channel": {"id": channel, "name": "deploys"},
        "message": {"ts": message_ts, "type": "message", "blocks": blocks or []},
        "response_url": response_url,
        "trigger_id": "1.2.3",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "actions.x",
                "value": value,
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def command_body(
    text: str, *, response_url: str, user_id: str = "U0TYPIST", channel: str = "C0DEPLOYS"
) -> str:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": "T1",
            "team_domain": "example",
            "channel_id": channel,
            "channel_name": "deploys",
            "user_id": user_id,
            "user_name": "typist",
            "command": "/deployhq",
            "text": text,
            "api_app_id": "A1",
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    )


class SigningKey:
    """An RSA key pair standing in for DeployHQ's, configured via DEPLOYHQ_PUBLIC_KEY."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def public_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, payload: bytes, algorithm: hashes.HashAlgorithm | None = None) -> str:
        raw = self.private.sign(payload, padding.PKCS1v15(), algorithm or hashes.SHA256())
        text = base64.b64encode(raw).decode()
        # DeployHQ's base64 comes in lines of 60, as in its real deliveries.
        return "\n".join(text[i : i + 60] for i in range(0, len(text), 60))

    def form(self, data: dict[str, Any], algorithm: hashes.HashAlgorithm | None = None) -> bytes:
        payload = json.dumps(data).encode()
        return urlencode({"payload": payload, "signature": self.sign(payload, algorithm)}).encode()
