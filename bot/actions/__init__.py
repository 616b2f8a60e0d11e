"""Every action, through one pipeline: ``pipeline`` (who may act, the claim and the servers it
holds, the preflight, sending, the call, settling), ``kinds`` (what an action supplies to it),
``on_card`` (Retry, Roll back, Deploy latest, Abort), ``deploy`` (``/deployhq deploy``'s
confirmed order), and ``reconcile`` (no card or action left behind)."""
