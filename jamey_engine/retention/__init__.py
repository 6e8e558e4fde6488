"""Memory retention: policies per layer (``policies``) and the runs that apply them (``runs``).

The rules that cut a layer live beside prune, in :mod:`jamey_engine.memory.retention`; this
package holds what needs the database and the operation log:

- :class:`RetentionPolicies`: each layer's ``max_age`` and ``max_bytes``, who set them and when,
  and the audit trail of every change. The default is no policy: nothing is ever deleted.
- :func:`run_retention`: plan (a dry run) or apply every policy, one layer at a time, under a
  run lock (one run at a time per data dir), recorded in the operation log as kind
  ``retention``: one row per layer (documents deleted, bytes freed, bytes before and after in
  the detail) and one row for the run (``layer`` empty), which /metrics counts.
- :func:`retention_summary`, :func:`last_run`, :func:`next_scheduled_run`: what /metrics and
  the workbench read.
"""

from jamey_engine.retention.policies import (
    MIN_MAX_AGE,
    MIN_MAX_BYTES,
    PolicyInfo,
    RetentionPolicies,
    check_max_age,
    check_max_bytes,
    format_age,
)
from jamey_engine.retention.runs import (
    SCHEDULE_ACTOR,
    LayerRetention,
    RetentionRun,
    RetentionSummary,
    last_run,
    next_scheduled_run,
    preview_policy,
    retention_summary,
    run_lock,
    run_retention,
)

__all__ = [
    "MIN_MAX_AGE",
    "MIN_MAX_BYTES",
    "SCHEDULE_ACTOR",
    "LayerRetention",
    "PolicyInfo",
    "RetentionPolicies",
    "RetentionRun",
    "RetentionSummary",
    "check_max_age",
    "check_max_bytes",
    "format_age",
    "last_run",
    "next_scheduled_run",
    "preview_policy",
    "retention_summary",
    "run_lock",
    "run_retention",
]
