"""The steps of the data-changing actions, below both the plan contract (``plans/``) and the
notebook runbooks (``runbooks/``), which each use them:

* ``checks``: ``Check``/``Checks`` (a preflight or a verification), the confirmation phrase and
  ``decide``, the one rule for whether an apply step may change data;
* ``prune_steps``, ``dedupe_steps``, ``restore_steps``: each action's preflight, plan, apply and
  verify, raising JameyError subclasses (the runbooks turn them into plain printed lines).
"""
