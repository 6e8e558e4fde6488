"""The thresholds an alert rule and the code share, each declared once.

prometheus/rules/alerts.yml cannot import Python, so tests/test_thresholds.py reads the rules and
holds every number here equal to its rule's. Everything else imports from here: the charts'
threshold lines and the Overview's cards (through ``observability.promql``), the growth
projection, the diagnosis verdicts, ``jamey doctor`` and the keys' "expiring soon" flag.
"""

from __future__ import annotations

from datetime import timedelta

GIB = 1024**3

#: JameyHighErrorRate: share of API requests answered 5xx over 5 minutes.
ERROR_RATE_WARNING = 0.05
ERROR_RATE_CRITICAL = 0.20
#: JameyHighLatency: p95 request duration, seconds.
P95_LATENCY_WARNING_SECONDS = 1.0
P95_LATENCY_CRITICAL_SECONDS = 2.5
#: JameyMemoryIndexTooLarge: one layer's index size, bytes.
INDEX_SIZE_WARNING_BYTES = GIB
INDEX_SIZE_CRITICAL_BYTES = 2 * GIB
#: JameyDataDirDiskNearlyFull: free share of the data dir's filesystem. ``jamey doctor`` applies
#: the same rule (a warning below the first, a problem below the second).
DISK_FREE_WARNING_RATIO = 0.10
DISK_FREE_CRITICAL_RATIO = 0.05
#: JameyBackupTooOld (and JameyBackupNeverSucceeded's ``for``): the newest good backup's age.
#: A daily schedule with two hours of slack; ``jamey doctor`` warns past the same age.
BACKUP_MAX_AGE = timedelta(hours=26)
#: JameyApiKeyExpiringSoon: a working key expiring within this is flagged ``expiring_soon``.
KEY_EXPIRING_WITHIN = timedelta(days=7)

#: ``jamey doctor`` only (a rule over ratios cannot say it): below this many free bytes nothing
#: fits a backup or an index rewrite, whatever the disk's size.
DISK_FREE_MIN_BYTES = GIB
