"""Every action, through one pipeline: ``pipeline`` (claim, preflight, sending, the call,
settle), ``kinds`` (what an action supplies to it), ``on_card`` (Retry, Roll back, Deploy
latest, Abort) and ``deploy`` (``/deployhq deploy``'s confirmed order)."""

from bot.actions.pipeline import ActionResult, Actions

__all__ = ["ActionResult", "Actions"]
