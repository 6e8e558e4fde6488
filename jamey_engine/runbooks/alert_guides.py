"""What an operator reads about each alert family: what to check and do, and when a silence is
right. The one copy of this prose: the workbench's Alerts page shows it beside an alert's
evidence, and tools/docs_reference.py writes it into each alert's page under docs/alerts/.
``jamey_engine.runbooks.links.ALERT_LINKS`` names each alert's guide by its key here.

The thresholds are not repeated in the text: the generated page shows each rule's expression,
and the workbench shows the alert's own summary. Text is Markdown without links (it is rendered
in the workbench and in the docs site, whose relative links differ).
"""

from __future__ import annotations

from dataclasses import dataclass

from jamey_engine.ports import SERVICE, local_url


@dataclass(frozen=True)
class AlertGuide:
    """One family's guide: a ``title``, what to check and do (``text``, Markdown) and when to
    silence it (``silence``, Markdown)."""

    title: str
    text: str
    silence: str


GUIDES: dict[str, AlertGuide] = {
    "service-down": AlertGuide(
        "Service down",
        f"""Prometheus cannot scrape the service. Check the process (`make run` prints where its log is:
`data/stack/service.log`), then `curl {local_url(SERVICE)}/health`: a 503 names what is unusable
(the data dir or the database). Start it again with `jamey serve`.""",
        """Silence only for a planned stop (an upgrade, a host reboot), matched on `instance`, for the
length of the window. Every other alert of that instance goes quiet anyway while it is down.""",
    ),
    "high-error-rate": AlertGuide(
        "High error rate",
        """Open the workbench's Dashboards page (error rate, request rate by status), then the service
log. A layer whose index is damaged answers 500 for that layer only: `jamey memory sizes` names it;
restore it with the `restore_backup` runbook.""",
        """Do not silence: clients are failing. While a known cause is being fixed (a restore in
progress), acknowledge the alert on the Alerts page instead, so others see who works on it.""",
    ),
    "high-latency": AlertGuide(
        "High latency",
        """Look at the latency chart by route. Slow searches usually mean a very large layer (prune it
with the `prune_memories` runbook); slow writes, a disk that is busy or nearly full.""",
        """Silence the warning for the length of a known heavy job (a re-index, a large import), never
the critical one.""",
    ),
    "rate-limit-surge": AlertGuide(
        "Rate limit surge",
        """Many requests are refused with 429. The Dashboards page shows whether the key limit or the
global one refuses them. Raise a key's limit with `jamey keys set-limit ID 120/minute` (or the API
keys page), or revoke a misbehaving key.""",
        """Silence for a few hours when a client is known to be load-testing; otherwise fix the limit or
the client, since refused requests are lost work for someone.""",
    ),
    "backups": AlertGuide(
        "Backups",
        """Run `jamey backup create` by hand and read its one-line error (a full disk names the
directory). Check `JAMEY_BACKUP_INTERVAL` on the service. `jamey backup list` and
`jamey backup verify ID` show what you can restore from; restores go through the `restore_backup`
runbook (dry run first) or the workbench's Backups page.""",
        """Do not silence: without a recent good backup a broken disk loses data. On a new
installation, take the first backup (`jamey backup create`) rather than silencing
`JameyBackupNeverSucceeded`.""",
    ),
    "offsite-and-drills": AlertGuide(
        "Off-site copies and restore drills",
        """`JameyBackupNotOffsite`: `JAMEY_BACKUP_REMOTE` is set and the newest successful backup has
not been copied there (and checked): the remote is down, full or refuses the credentials in
`JAMEY_RCLONE_CONFIG`. `jamey backup list` shows each backup's `location` (`local`, `remote`,
`both`) and the last copy error; `jamey backup push` retries now. `JameyRestoreDrillStale`: no
restore drill has passed lately: run the `restore_drill` runbook, which restores the newest backup
into a scratch directory (never the live data) and says whether every layer opens, the counts
match, searches answer and the keys verify.""",
        """Silence `JameyBackupNotOffsite` for the length of a planned remote outage. Never silence
`JameyRestoreDrillStale`: run the drill, it changes nothing.""",
    ),
    "memory-index-size": AlertGuide(
        "Memory index size",
        """The alert's remediation opens the workbench's Runbooks page on `prune_memories` with the
layer filled: run the dry run, read the plan, type its phrase and apply (or
`jamey runbook run prune_memories -p layer L`). `memory_growth` projects when each layer crosses
the threshold; `explore_memories` shows what grows (which terms, which hours, how much repeats);
`dedupe_memories` removes duplicates. All run from the Runbooks page too, the changing ones with a
dry run first and then the confirmation phrase.""",
        """Silence the warning for a day or two, matched on `layer`, while a retention policy or a prune
is being agreed; set a retention policy so that it does not come back.""",
    ),
    "memory-write-ahead-log": AlertGuide(
        "Memory write-ahead log",
        """A layer's write-ahead log (`memory/<layer>/wal-*.log`) keeps growing, so no process manages
to flush it into the index. The writes are durable (they were fsynced before they were
acknowledged) and the writing process sees them, but other processes do not. The service log says
why each flush failed: a `Busy` names the process holding the index writer or a running
prune/restore; `no space left on device` asks for room (see the data dir disk guide); a
`LogCorrupt` names the segment file and byte offset of a damaged record: move that file aside (or
restore a backup) and restart. Any clean shutdown, or `jamey memory sizes` (which flushes before it
measures), retries the flush.""",
        """Do not silence: the log grows until the disk fills. A long prune or restore holds the writer
on purpose; the alert ends by itself when it finishes.""",
    ),
    "memory-retention": AlertGuide(
        "Memory retention",
        """Layers have retention policies, but the last runs failed or none succeeded for a while. Run
`jamey memory retention apply` by hand and read its one-line error (a busy lock names the other
process; a damaged layer names its directory). `jamey memory retention plan` shows what the next
run would remove; the operation log (the workbench's Backups page, kind `retention`) holds every
run. Check that one service process runs the schedule (its log says "this process runs the
retention schedule").""",
        """Silence while retention is paused on purpose (a legal hold), matched on the alert name, and
write the reason in the silence's comment.""",
    ),
    "mqtt": AlertGuide(
        "MQTT",
        """The service cannot reach the broker in `JAMEY_MQTT_URL`. Requests are never slowed by it and
events are dropped while it is down (the service reconnects with backoff). Check the broker
(`mosquitto_sub -h HOST -t 'jamey/events/#'`).""",
        """Silence for the length of planned broker maintenance; the service reconnects by itself.""",
    ),
    "process-resources": AlertGuide(
        "Process resources",
        """The service process uses a lot of RAM or CPU for minutes. Check the request rate and the
largest layer; scale out as the Scaling out page of the docs describes.""",
        """Silence for the length of a known heavy job (an import, a re-index, a benchmark).""",
    ),
    "alert-receiver-failing": AlertGuide(
        "Alert receiver failing",
        """Alertmanager's deliveries to the Jamey webhook keep failing, so alert history is not
recorded. Its log (`data/stack/alertmanager.log`) names the HTTP status: connection refused means
the service is down (`jamey serve`); 401 means the key in
`data/stack/alertmanager-webhook.credentials` was revoked or belongs to another database (delete
the file and start `make run` again: it creates a new `alerts:write` key); 403 means the key lacks
`alerts:write`.""",
        """Do not silence: while it fires, no alert reaches the history or the automatic diagnosis.""",
    ),
    "data-dir-disk-full": AlertGuide(
        "Data dir disk full",
        """Little of the data dir's disk is free. Prune old memories (the `prune_memories` runbook),
apply backup retention (`jamey backup prune --keep N`), or move `JAMEY_BACKUP_DIR` to another disk.
Backups and restores refuse cleanly on a full disk and leave the live data as it was.""",
        """Silence the warning only while room is being made (a prune running, a disk being added);
never the critical one.""",
    ),
    "api-key-expiring": AlertGuide(
        "API key expiring",
        """A working key expires soon. On the workbench's API keys page, filter on "expires within 7
days" to see it, its last use and its traffic. If the client still uses it, rotate it
(`jamey keys rotate ID --grace 1d`) and hand over the new key before the grace ends; if nobody uses
it, revoke it, or let it lapse.""",
        """Silence matched on `key_id` until the expiry when the key is meant to lapse; revoking it ends
the alert at once.""",
    ),
    "scheduled-runbooks": AlertGuide(
        "Scheduled runbooks",
        """`JameyRunbookFailed`: the last run a schedule started failed (or its process died).
`JameyScheduledRunbookMissed`: an active schedule has had no successful run for two of its periods.
The alert's diagnosis names the schedule and its runbook. Open the failed run on the Runbooks page
(or `jamey runbook runs --runbook NAME`): the executed notebook shows the failing cell and its
error. Fix the cause, then run the runbook once by hand to see it succeed; the alert ends at the
next successful scheduled run. `jamey runbook schedule list` shows each schedule's `last_status`,
`next_run_at` and whether it is paused.""",
        """Rather than silencing a schedule that keeps failing while you work on it, pause it
(`jamey runbook schedule pause ID`): the alert then ends, and the schedule's state says why.""",
    ),
}
