"""Authenticate and parse DeployHQ's outbound notifications into a ``Deployment``.

Two kinds reach us. The older "HTTP POST" kind is form-encoded ``payload`` (the deployment as a
JSON string) plus ``signature``, an RSA PKCS#1 v1.5 signature over the payload's exact bytes
(SHA-1 in old deliveries, SHA-256 in newer ones). The newer "HTTP" kind is a JSON body whose
signature scheme is undocumented, so it is authenticated by the shared secret in the URL instead.
Authentication always happens before the body is parsed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from bot.deployhq.deployment import Deployment

MAX_BODY_BYTES = 1024 * 1024
FORM = "application/x-www-form-urlencoded"


class WebhookRejected(Exception):
    """A delivery we refuse, with the HTTP status and a message safe to send back."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class WebhookAuth:
    secret: str | None
    public_key: RSAPublicKey


def read_notification(
    body: bytes, content_type: str, token: str | None, auth: WebhookAuth
) -> Deployment:
    """The deployment a delivery describes, or ``WebhookRejected``."""
    _check_token(token, auth.secret)
    if content_type == FORM:
        data: Any = _signed_form_payload(body, auth.public_key)
    elif content_type == "application/json" or content_type.endswith("+json"):
        if auth.secret is None:
            raise WebhookRejected(
                403,
                "JSON deliveries are accepted only when DEPLOYHQ_WEBHOOK_SECRET is set "
                "and the URL carries it as ?token=",
            )
        data = _json(body)
    else:
        raise WebhookRejected(
            415, f"expected {FORM} or application/json, not {content_type or 'no content type'}"
        )
    # Both kinds may wrap the deployment as {"payload": {...}} (DeployHQ's own example does).
    if isinstance(data, dict) and "payload" in data and "identifier" not in data:
        data = data["payload"]
        if isinstance(data, str):
            data = _json(data.encode())
    try:
        return Deployment.from_api(data)
    except ValueError as exc:
        raise WebhookRejected(400, f"not a DeployHQ deployment: {exc}") from exc


def verify_signature(payload: bytes, signature: str, key: RSAPublicKey) -> bool:
    """Whether ``signature`` (base64) is DeployHQ's signature of ``payload``, SHA-256 or SHA-1."""
    # Line breaks are common in the base64; a space can only be a '+' that was not form-encoded.
    cleaned = "".join(signature.split("\n")).replace("\r", "").replace("\t", "").replace(" ", "+")
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return False
    for algorithm in (hashes.SHA256(), hashes.SHA1()):  # noqa: S303 - DeployHQ signed with SHA-1
        try:
            key.verify(raw, payload, padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            continue
        return True
    return False


def _check_token(token: str | None, secret: str | None) -> None:
    if secret is None:
        return
    if not token:
        raise WebhookRejected(401, "this URL needs ?token=<DEPLOYHQ_WEBHOOK_SECRET>")
    if not hmac.compare_digest(token.encode(), secret.encode()):
        raise WebhookRejected(403, "the token does not match DEPLOYHQ_WEBHOOK_SECRET")


def _signed_form_payload(body: bytes, key: RSAPublicKey) -> Any:
    try:
        fields = parse_qs(body, keep_blank_values=True, max_num_fields=20, strict_parsing=False)
    except ValueError as exc:
        raise WebhookRejected(400, "the form body cannot be read") from exc
    payloads = fields.get(b"payload")
    if not payloads:
        raise WebhookRejected(400, "the form has no 'payload' field")
    signatures = fields.get(b"signature")
    if not signatures or not signatures[0].strip():
        raise WebhookRejected(401, "the form delivery is not signed (no 'signature' field)")
    # The signature covers the payload's exact bytes, so they are taken from the raw form.
    payload = payloads[0]
    signature = signatures[0].decode("ascii", errors="replace")
    if not verify_signature(payload, signature, key):
        raise WebhookRejected(403, "the signature does not verify with DeployHQ's public key")
    return _json(payload)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WebhookRejected(400, "the body is not valid JSON") from exc
