"""What changed between two revisions, as DeployHQ can tell it: a branch's recent commits
(``GET …/repository/recent_commits``, newest first) and the range cut out of them. Nothing in
DeployHQ lists the commits between two arbitrary revisions, so a range whose ends are not both
in the list is said to be unknown, never guessed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.deployhq.deployment import Revision

MAX_COMMITS = 200  # DeployHQ's list is short; an odd answer is never held whole
_MAX_TEXT = 2000


def to_json(commit: Revision) -> dict[str, str]:
    return {"ref": commit.ref, "author": commit.author, "message": commit.message}


def parse(data: Any) -> list[Revision]:
    """The commits of a ``recent_commits`` answer, newest first as DeployHQ lists them; an
    entry without a ref is skipped. ``ValueError`` when the answer lists no commits at all."""
    listed = data.get("commits") if isinstance(data, Mapping) else None
    if not isinstance(listed, list):
        raise ValueError("the answer has no list of commits")
    found = []
    for entry in listed[:MAX_COMMITS]:
        if not isinstance(entry, Mapping):
            continue
        ref = _text(entry.get("ref"))
        if ref:
            message = _text(entry.get("message")) or _text(entry.get("short_message"))
            found.append(Revision(ref, message, _text(entry.get("author"))))
    return found


def same_ref(one: str, other: str) -> bool:
    """The same commit, whether either is given whole or abbreviated (seven characters at
    least)."""
    if not one or not other:
        return False
    if one == other:
        return True
    shorter, longer = sorted((one, other), key=len)
    return len(shorter) >= 7 and longer.startswith(shorter)


@dataclass(frozen=True)
class Range:
    """The commits after ``base`` up to and including ``end``, newest first, when DeployHQ's
    list holds both ends (``known``); else nothing is claimed about them."""

    base: str
    end: str
    commits: tuple[Revision, ...] = ()
    known: bool = False


def between(commits: Sequence[Revision], base: str, end: str) -> Range:
    """The range ``base``..``end`` cut out of ``commits`` (newest first). Unknown when either
    end is missing from the list, or ``base`` comes after ``end`` (a rewritten branch, or a
    roll back the other way round)."""
    if same_ref(base, end):
        return Range(base, end, (), True)
    at_end = next((i for i, c in enumerate(commits) if same_ref(c.ref, end)), None)
    at_base = next((i for i, c in enumerate(commits) if same_ref(c.ref, base)), None)
    if at_end is None or at_base is None or at_base < at_end:
        return Range(base, end)
    return Range(base, end, tuple(commits[at_end:at_base]), True)


@dataclass(frozen=True)
class Summary:
    """A range in a few words for a confirm: how many commits, and the first lines of the
    newest two."""

    count: int
    headlines: tuple[str, ...] = ()

    @classmethod
    def of(cls, commits: Sequence[Revision]) -> Summary:
        return cls(len(commits), tuple(c.headline for c in commits[:2]))

    def to_json(self) -> dict[str, Any]:
        return {"n": self.count, "first": list(self.headlines)}

    @classmethod
    def from_json(cls, data: Any) -> Summary | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("n"), int):
            return None
        first = data.get("first")
        headlines = tuple(str(h) for h in first[:2]) if isinstance(first, list) else ()
        return cls(int(data["n"]), headlines)


def _text(value: Any) -> str:
    return value.strip()[:_MAX_TEXT] if isinstance(value, str) else ""
