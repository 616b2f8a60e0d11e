"""The floors the bot is measured against, served exactly as the bot is (the Procfile's gunicorn):

- ``POST /slack/events``: a Flask endpoint that only answers 200 (the floor of a click's ack);
- ``POST /deployhq/webhook``: the least any bot must do with a failure: read the deployment back
  from DeployHQ and post it to Slack, inside the request (the floor of a burst of failures), with
  the clients the bot is built on (a ``requests`` session for DeployHQ, slack-sdk's
  ``WebClient`` for Slack).

Both read the same settings as the bot (``DEPLOYHQ_BASE_URL``, ``SLACK_API_URL``, …).
"""

from __future__ import annotations

import os
import threading

import requests
from flask import Flask, Response, request
from slack_sdk import WebClient

app = Flask(__name__)
_local = threading.local()


def _session() -> requests.Session:
    """One keep-alive session per thread, as the bot's DeployHQ client keeps one."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    session: requests.Session = _local.session
    return session


_slack = WebClient(
    token=os.environ.get("SLACK_BOT_TOKEN"), base_url=os.environ.get("SLACK_API_URL", "")
)


@app.post("/slack/events")
def events() -> str:
    return ""


@app.post("/deployhq/webhook")
def webhook() -> Response:
    delivery = request.get_json(silent=True) or {}
    project = (delivery.get("project") or {}).get("permalink") or "bench"
    identifier = str(delivery.get("identifier") or "")
    session = _session()
    read = session.get(
        f"{os.environ['DEPLOYHQ_BASE_URL']}/projects/{project}/deployments/{identifier}",
        auth=(os.environ["DEPLOYHQ_USERNAME"], os.environ["DEPLOYHQ_API_KEY"]),
        timeout=20,
    )
    deployment = read.json()
    name = (deployment.get("project") or {}).get("name") or project
    _slack.chat_postMessage(
        channel=os.environ["SLACK_CHANNEL"], text=f"{name} failed: {identifier}"
    )
    return Response("", 200)


@app.get("/healthz")
def healthz() -> str:
    return "ok"
