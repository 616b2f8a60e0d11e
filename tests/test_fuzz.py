"""Fuzzing with Hypothesis: whatever arrives, the answer is a 4xx or a usage text, never a 500,
never a retry; and whatever parses, the card built from it is valid Block Kit."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from bot.bolt import command_words as commands
from bot.config import DEPLOYHQ_PUBLIC_KEY
from bot.deployhq.deployment import Deployment
from bot.deployhq.notifications import FORM, WebhookAuth, WebhookRejected, read_notification
from bot.messages import replies
from bot.messages.card import deployment_card
from bot.words import states
from bot.words.buttons import ActionTarget
from tests.conftest import BotServer
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import DEPLOYMENT_ID, WEBHOOK_SECRET, click_body, command_body

KEY = load_pem_public_key(DEPLOYHQ_PUBLIC_KEY.encode())
assert isinstance(KEY, RSAPublicKey)
AUTH = WebhookAuth(WEBHOOK_SECRET, KEY)
HTTP_FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CONTENT_TYPES = st.sampled_from(
    [FORM, "application/json", "application/vnd.api+json", "text/plain", "", "multipart/form-data"]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
TIMESTAMP = st.one_of(JSON, st.datetimes().map(lambda d: d.isoformat()))
DEPLOYMENTISH = st.fixed_dictionaries(
    {"identifier": st.one_of(st.just(DEPLOYMENT_ID), st.text(max_size=70))},
    optional={
        "status": st.one_of(st.sampled_from(["failed", "running", "completed"]), JSON),
        "project": st.one_of(
            JSON,
            st.fixed_dictionaries(
                {"permalink": st.text(max_size=300)}, optional={"name": st.text(max_size=300)}
            ),
        ),
        "branch": JSON,
        "deployer": JSON,
        "start_revision": st.one_of(
            JSON,
            st.fixed_dictionaries(
                {"ref": st.text(max_size=80)}, optional={"message": st.text(max_size=3000)}
            ),
        ),
        "end_revision": st.one_of(
            JSON,
            st.fixed_dictionaries(
                {"ref": st.text(max_size=80)}, optional={"message": st.text(max_size=3000)}
            ),
        ),
        "timestamps": st.one_of(
            JSON,
            st.fixed_dictionaries(
                {},
                optional={k: TIMESTAMP for k in ("queued_at", "started_at", "completed_at")}
                | {"duration": JSON},
            ),
        ),
        "servers": st.one_of(
            JSON, st.lists(st.fixed_dictionaries({"name": st.text(max_size=300)}), max_size=60)
        ),
    },
)
STATES = [
    states.Failed(),
    states.Failed(again=True, retried_by="U1"),
    states.Refused("U1", "x"),
    states.Progress("U1", None),
]


def check_refusal(error: WebhookRejected) -> None:
    assert 400 <= error.status < 500
    assert error.message


@settings(max_examples=400, deadline=None)
@given(
    body=st.binary(max_size=2048),
    content_type=CONTENT_TYPES,
    token=st.one_of(st.none(), st.just(WEBHOOK_SECRET), st.text(max_size=40)),
)
def test_any_bytes_are_read_as_a_deployment_or_refused_with_a_4xx(body, content_type, token):
    try:
        read_notification(body, content_type, token, AUTH)
    except WebhookRejected as error:
        check_refusal(error)


@settings(max_examples=400, deadline=None)
@given(data=DEPLOYMENTISH, wrap=st.booleans())
def test_any_deployment_like_json_parses_into_a_valid_card_or_is_refused(data, wrap):
    body = json.dumps({"payload": data} if wrap else data).encode()
    try:
        deployment = read_notification(body, "application/json", WEBHOOK_SECRET, AUTH)
    except WebhookRejected as error:
        check_refusal(error)
        return
    assert Deployment.from_api(deployment.to_api()) == deployment
    for state in STATES:
        message = deployment_card(deployment, state, page_url="https://x.test/d")
        for block in message["blocks"]:
            Block.parse(block).to_dict()  # within every Block Kit limit


@settings(max_examples=400, deadline=None)
@given(payload=st.binary(max_size=512), signature=st.text(max_size=300))
def test_any_form_delivery_without_a_valid_signature_is_refused(payload, signature):
    body = urlencode({"payload": payload, "signature": signature}).encode()
    try:
        read_notification(body, FORM, WEBHOOK_SECRET, AUTH)
    except WebhookRejected as error:
        assert error.status in (400, 401, 403)
    else:
        raise AssertionError("an unsigned delivery was accepted")


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=300))
def test_any_command_text_parses_into_a_command_or_a_usage_text(text):
    command = commands.parse(text)
    if isinstance(command, commands.Retry | commands.Status):
        assert text.split()[0].lower() in ("retry", "status")
        assert ActionTarget(command.project, command.deployment, command.deployment + ":0")
    if isinstance(command, commands.Help):
        usage = replies.usage(commands.USAGE, command.problem)
        for block in usage["blocks"]:
            Block.parse(block).to_dict()
        assert "<!" not in usage["text"].replace("<project>", "").replace("<deployment>", "")


@settings(max_examples=500, deadline=None)
@given(value=st.one_of(st.text(max_size=300), JSON.map(json.dumps)))
def test_any_button_value_decodes_to_a_valid_target_or_is_refused(value):
    try:
        target = ActionTarget.decode(value)
    except ValueError:
        return
    assert target.run_key.startswith(target.deployment + ":")


# --- the same over HTTP, against the running app ------------------------------------------


@HTTP_FUZZ
@given(
    body=st.one_of(st.binary(max_size=2048), DEPLOYMENTISH.map(lambda d: json.dumps(d).encode())),
    content_type=CONTENT_TYPES,
    with_token=st.booleans(),
)
def test_the_webhook_route_never_answers_500_and_never_retries(
    bot: BotServer, fake_deployhq: FakeDeployHQ, body, content_type, with_token
):
    response = bot.webhook(
        body,
        token=WEBHOOK_SECRET if with_token else None,
        content_type=content_type or "application/octet-stream",
    )
    assert response.status_code < 500, response.text
    assert response.status_code in (200, 400, 401, 403, 413, 415)
    assert response.json()["ok"] is (response.status_code == 200)
    assert fake_deployhq.retries() == []


@HTTP_FUZZ
@given(text=st.text(max_size=200), click=st.booleans())
def test_slack_requests_with_any_text_are_acknowledged_and_never_retry(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ, text, click
):
    # DeployHQ knows no deployment, so even a well-formed retry finds nothing to retry.
    fake_deployhq.always("show", Reply(404, {"error": "Not found"}))
    fake_deployhq.always("index", Reply(404, {"error": "Not found"}))
    url = fake_slack.response_url()
    body = click_body(text, response_url=url) if click else command_body(text, response_url=url)

    response = bot.slack_post(body)

    assert response.status_code == 200
    assert fake_deployhq.retries() == []
