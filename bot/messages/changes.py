"""What changed, in words: a failure's commits and DeployHQ's overview for its thread, what a Roll
back undoes and a Deploy latest adds for their confirms, and a preview's files. Every commit
message, author, branch and path is outside text: escaped, so none can ping or plant a link."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.deployhq.commits import Range, Summary
from bot.deployhq.deployment import Revision
from bot.deployhq.previews import READY, Preview
from bot.messages.text import clip, outside

MAX_SHOWN = 10  # commits in the thread note, newest first
MAX_CONFIRM_LINES = 5  # commits in /deployhq deploy's confirm
MAX_PATHS = 10  # a preview's paths shown


def _ref(ref: str) -> str:
    return f"`{outside(ref[:7], 7)}`"


def commit_line(commit: Revision) -> str:
    """``a1b2c3d`` Ann: Fix the login (plain text inside our mrkdwn)."""
    author = f" {outside(commit.author, 80)}:" if commit.author else ""
    headline = outside(commit.headline, 150) or "_(no message)_"
    return f"• {_ref(commit.ref)}{author} {headline}"


def what_changed(
    found: Range, *, since: str, branch: str, overview: str = "", more_url: str = ""
) -> str:
    """The failure's thread note: the commits since ``since`` (what the range starts from, in
    words), newest first, at most MAX_SHOWN, then how many more; DeployHQ's overview below."""
    lead = f":memo: *What changed since {since}*"
    if not found.known:
        text = (
            f"{lead}: DeployHQ's recent commits of `{outside(branch, 100)}` do not reach from "
            f"{_ref(found.base)} to {_ref(found.end)} (too far back, or the branch was "
            "rewritten), so the bot does not guess. DeployHQ's deployment page has them."
        )
    elif not found.commits:
        text = (
            f"{lead}: no commits. The failed run deployed {_ref(found.end)}, the same revision; "
            "only the servers or their settings differ."
        )
    else:
        count = len(found.commits)
        lines = [commit_line(c) for c in found.commits[:MAX_SHOWN]]
        more = count - MAX_SHOWN
        if more > 0:
            words = f"and {more} more"
            lines.append(f"<{more_url}|{words} in DeployHQ>" if more_url else f"{words}.")
        plural = "commit" if count == 1 else "commits"
        text = f"{lead} ({_ref(found.base)} → {_ref(found.end)}, {count} {plural}):\n" + (
            "\n".join(lines)
        )
    if overview:
        quoted = "\n".join(f">{line}" for line in outside(overview, 1500).splitlines() if line)
        text += f"\n*DeployHQ's overview:*\n{quoted}"
    return text


def unreadable(branch: str, said: str) -> str:
    """The commits could not be read: DeployHQ's words, and nothing guessed."""
    return (
        f":memo: What changed on `{outside(branch, 100)}` could not be read from DeployHQ: "
        f"{outside(said, 300)}"
    )


def _named(summary: Summary) -> str:
    """“Fix login”, “Add cache” and 1 more (plain text, for a confirm dialog)."""
    quoted = [f"“{clip(h, 60)}”" for h in summary.headlines if h]
    rest = summary.count - len(quoted)
    if rest > 0:
        quoted.append(f"{rest} more" if quoted else f"{rest} commits")
    return ", ".join(quoted[:-1]) + (" and " if len(quoted) > 1 else "") + quoted[-1]


def undoes(summary: Summary | None) -> str:
    """Roll back's confirm: what it undoes (plain text); "" when not known."""
    if summary is None:
        return ""
    if not summary.count:
        return " It undoes no commits: the failed run deployed the same revision."
    plural = "commit" if summary.count == 1 else "commits"
    return f" Undoes {summary.count} {plural}: {_named(summary)}."


def adds(summary: Summary | None) -> str:
    """Deploy latest's confirm: what it adds beyond the failed run (plain text)."""
    if summary is None or not summary.count:
        return ""
    plural = "commit" if summary.count == 1 else "commits"
    return f" Adds {summary.count} {plural}: {_named(summary)}."


def adds_lines(found: Range | None) -> str:
    """/deployhq deploy's confirm: the commits it adds to what the target runs (mrkdwn)."""
    if found is None:
        return ""
    if not found.known:
        return (
            f"\nWhat it adds since {_ref(found.base)} is further back than DeployHQ's recent "
            "commits reach."
        )
    count = len(found.commits)
    if not count:
        return ""
    plural = "commit" if count == 1 else "commits"
    lines = [commit_line(c) for c in found.commits[:MAX_CONFIRM_LINES]]
    if count > MAX_CONFIRM_LINES:
        lines.append(f"and {count - MAX_CONFIRM_LINES} more")
    return f"\nAdds {count} {plural} since {_ref(found.base)}:\n" + "\n".join(lines)


def preview_asked(what: str, where: str) -> str:
    return (
        f":mag_right: DeployHQ is preparing the preview of {what}; it will be posted {where}. "
        "A preview changes nothing on the servers."
    )


def preview_under_way(what: str, by: str) -> str:
    asker = f", asked for by {by}," if by else ""
    return (
        f":mag_right: The preview of {what}{asker} is under way; it will be posted when "
        "DeployHQ has it."
    )


def preview_refused(what: str, said: str) -> str:
    return f":no_entry: DeployHQ gave no preview of {what}: “{outside(said, 500)}”"


def preview_slow(what: str, seconds: float) -> str:
    return (
        f":mag_right: DeployHQ is still preparing the preview of {what} after "
        f"{round(seconds)} s; the bot keeps following it and will post it when it is ready."
    )


def preview_lost(what: str, minutes: float) -> str:
    return (
        f":grey_question: DeployHQ has not finished the preview of {what} in {round(minutes)} "
        "minutes; the bot stops following it. Nothing was deployed; see DeployHQ."
    )


def preview_result(what: str, preview: Preview, servers: Mapping[str, str]) -> str:
    """The preview, once DeployHQ has it: on each server, how many files change and are
    removed, and the first MAX_PATHS paths; or that DeployHQ could not prepare it."""
    if preview.status != READY:
        said = f": “{outside(preview.summary, 500)}”" if preview.summary else "."
        return (
            f":warning: DeployHQ could not prepare the preview of {what} "
            f"(*{outside(preview.status, 50)}*){said} Nothing was deployed."
        )
    lines = []
    paths: list[str] = []
    for files in preview.files:
        name = outside(servers.get(files.server, files.server), 100)
        lines.append(f"{_count(files.changed, 'change')}, {len(files.removed)} removed on {name}")
        paths += [*files.changed, *(f"removed: {p}" for p in files.removed)]
    if not lines:
        lines.append("no files change")
    text = f":mag_right: Preview of {what}: " + "; ".join(lines) + ". Nothing was deployed."
    if paths:
        shown = _code("\n".join(clip(p, 200) for p in paths[:MAX_PATHS]))
        more = len(paths) - MAX_PATHS
        text += f"\n```{shown}```" + (f"\nand {more} more paths." if more > 0 else "")
    return text


def _count(paths: Sequence[str], verb: str) -> str:
    return (
        f"{len(paths)} file{'' if len(paths) == 1 else 's'} {verb}{'s' if len(paths) == 1 else ''}"
    )


def _code(text: str) -> str:
    """Outside text inside a code block: escaped, and no backtick to end the block early."""
    return outside(text, 2400).replace("`", "ˋ")
