"""The ``/deployhq`` command's words, parsed into what to do. Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from bot.deployhq.deployment import is_identifier, is_permalink

_COUNT = re.compile(r"[0-9]{1,3}")
DEFAULT_FAILED_COUNT = 5
MAX_FAILED_COUNT = 20

USAGE = "\n".join(
    [
        "*/deployhq* acts on DeployHQ deployments:",
        "• `/deployhq retry <project> <deployment>`: retry a failed deployment",
        "• `/deployhq rollback <project> <deployment>`: put the failed deployment's servers back "
        "on the last revision that worked there",
        "• `/deployhq deploy <project> <server or group> [branch]`: deploy the branch's latest "
        "commit (by default the project's branch) there, after you confirm",
        "• `/deployhq status <project> <deployment>`: show a deployment (only to you)",
        "• `/deployhq status <project>`: which servers and groups deploy by themselves, and "
        "who paused the others",
        "• `/deployhq freeze <project> [server or group]`: pause auto-deploy there (without one: "
        "everywhere it is on); `/deployhq unfreeze …` resumes it",
        f"• `/deployhq failed <project> [count]`: the last failed deployments "
        f"(default {DEFAULT_FAILED_COUNT}, at most {MAX_FAILED_COUNT}), each with Retry",
        "• `/deployhq help`: this text",
        "`<project>` is the project's permalink or identifier; `<deployment>` is the deployment's "
        "identifier, or its DeployHQ address pasted whole (then `<project>` may be left out).",
    ]
)


@dataclass(frozen=True)
class Help:
    problem: str = ""  # why the usage is shown, when the command was not understood


@dataclass(frozen=True)
class Retry:
    project: str
    deployment: str


@dataclass(frozen=True)
class Rollback:
    project: str
    deployment: str


@dataclass(frozen=True)
class Deploy:
    """``words``: a server's or group's name (which may have spaces) or identifier, perhaps
    followed by a branch; which is which is known once DeployHQ lists the names."""

    project: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class Status:
    project: str
    deployment: str


@dataclass(frozen=True)
class ProjectStatus:
    project: str


@dataclass(frozen=True)
class Freeze:
    """Automatic deployments ``on`` (``unfreeze``) or off (``freeze``) for the server or group
    ``words`` names (a name may have spaces), or for every one of the project."""

    project: str
    words: tuple[str, ...]
    on: bool


@dataclass(frozen=True)
class ListFailed:
    project: str
    count: int = DEFAULT_FAILED_COUNT


Command = Help | Retry | Rollback | Deploy | Status | ProjectStatus | Freeze | ListFailed


def parse(text: str) -> Command:
    words = text.split()
    if not words or words[0].lower() in ("help", "-h", "--help", "?"):
        return Help()
    verb, args = words[0].lower(), words[1:]
    if verb == "status" and len(args) == 1 and _is_project(args[0]):
        return ProjectStatus(args[0])
    if verb in ("freeze", "unfreeze"):
        if not 1 <= len(args) <= 12 or not _is_project(args[0]):
            return Help(f"`{verb}` needs a project, and may take a server or group.")
        if len(" ".join(args[1:])) > 200:
            return Help(f"`{verb}` needs a server or group name.")
        named = tuple(w.strip("\"'“”") for w in args[1:])
        return Freeze(args[0], named, verb == "unfreeze")
    if verb in ("retry", "rollback", "status"):
        target = _deployment_args(args)
        if isinstance(target, str):
            return Help(f"`{verb}` needs {target}.")
        project, deployment = target
        if verb == "retry":
            return Retry(project, deployment)
        if verb == "rollback":
            return Rollback(project, deployment)
        return Status(project, deployment)
    if verb == "deploy":
        if not 2 <= len(args) <= 12 or not _is_project(args[0]):
            return Help("`deploy` needs a project and a server or group, and may take a branch.")
        if len(" ".join(args[1:])) > 200:
            return Help("`deploy` needs a server or group name and a branch name.")
        return Deploy(args[0], tuple(w.strip("\"'“”") for w in args[1:]))
    if verb == "failed":
        if not 1 <= len(args) <= 2 or not _is_project(args[0]):
            return Help("`failed` needs a project, and may take a count.")
        if len(args) == 1:
            return ListFailed(args[0])
        # ASCII digits only: "²".isdigit() is True, and int("²") raises.
        if not _COUNT.fullmatch(args[1]) or not 1 <= int(args[1]) <= MAX_FAILED_COUNT:
            return Help(f"the count must be a number from 1 to {MAX_FAILED_COUNT}.")
        return ListFailed(args[0], int(args[1]))
    return Help(f"there is no `{verb[:30]}` command.")  # quoted back, cut short


def _deployment_args(args: list[str]) -> tuple[str, str] | str:
    """``(project, deployment)`` from ``<project> <id|url>`` or ``<url>``; else what is missing."""
    if len(args) == 1:
        from_url = _from_url(args[0])
        return from_url or "a project and a deployment, or a deployment's DeployHQ address"
    if len(args) != 2:
        return "a project and a deployment"
    project, deployment = args
    if not _is_project(project):
        return "a project permalink or identifier first"
    from_url = _from_url(deployment)
    if from_url:
        return project, from_url[1]
    if not is_identifier(deployment):
        return "a deployment identifier (or its DeployHQ address) after the project"
    return project, deployment


def _from_url(word: str) -> tuple[str, str] | None:
    """``(project, deployment)`` from ``https://<acct>.deployhq.com/projects/<p>/deployments/<d>``.

    Slack may wrap a pasted address as ``<url>`` or ``<url|label>``.
    """
    word = word.strip("<>").split("|", 1)[0]
    parts = urlsplit(word)
    if parts.scheme not in ("http", "https"):
        return None
    segments = [unquote(s) for s in parts.path.strip("/").split("/")]
    if len(segments) >= 4 and segments[0] == "projects" and segments[2] == "deployments":
        project, deployment = segments[1], segments[3]
        if _is_project(project) and is_identifier(deployment):
            return project, deployment
    return None


def _is_project(word: str) -> bool:
    return is_permalink(word)
