"""The baseline: a Flask app that only answers 200, served exactly as the bot is."""

from flask import Flask

app = Flask(__name__)


@app.post("/slack/events")
def events() -> str:
    return ""


@app.get("/healthz")
def healthz() -> str:
    return "ok"
