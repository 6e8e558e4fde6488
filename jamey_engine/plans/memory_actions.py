"""Actions on the memory layers: prune, dedupe and retention (apply), through the shared
plan, apply and verify steps (``preflight/``) and the engine's recorded runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jamey_engine.durations import parse_duration
from jamey_engine.plans.actions import Action, Change, Parameter, Preview, register
from jamey_engine.preflight.checks import Check, Checks, Decision
from jamey_engine.sizes import total_freed

if TYPE_CHECKING:
    from jamey_engine.engine import Engine
    from jamey_engine.preflight.prune_steps import PrunePlan
    from jamey_engine.progress import Progress

GO = Decision("go", "applied through a plan")


def _layers(value: Any) -> list[str]:
    from jamey_engine.preflight.prune_steps import parse_layers

    return list(parse_layers(value if isinstance(value, (list, tuple)) else str(value)))


def _older_than(value: Any) -> str:
    parse_duration(str(value), field="older_than")
    return str(value).strip().lower()


class PruneAction(Action):
    name = "prune"
    scope = "ops:write"
    backup_first = True
    description = "Delete memories older than a duration and reclaim their disk space."
    parameters = (
        Parameter(
            "older_than", "delete memories older than this duration (e.g. 30d)", _older_than, required=True
        ),
        Parameter("layer", "all, one layer, or a comma list of layers", _layers, default=None),
    )

    def check(self, raw: Any) -> dict[str, Any]:
        checked = super().check(raw)
        if checked["layer"] is None:
            checked["layer"] = _layers("all")
        return checked

    def preflight(self, engine: Engine, params: dict[str, Any]) -> Checks:
        from jamey_engine.preflight.prune_steps import prune_preflight

        return prune_preflight(engine, tuple(params["layer"]), backup_first=True)

    def preflight_and_preview(self, engine: Engine, params: dict[str, Any]) -> tuple[Preview, Checks | None]:
        """The preview (the prune's dry run), then the preflight on what that dry run measured:
        each layer is opened, counted and measured once per plan, not two or three times."""
        from jamey_engine.preflight.prune_steps import plan_prune, prune_preflight

        plan = plan_prune(engine, tuple(params["layer"]), params["older_than"])
        checks = prune_preflight(engine, tuple(params["layer"]), backup_first=True, planned=plan)
        return self._preview(plan), checks

    def preview(self, engine: Engine, params: dict[str, Any]) -> Preview:
        from jamey_engine.preflight.prune_steps import plan_prune

        return self._preview(plan_prune(engine, tuple(params["layer"]), params["older_than"]))

    def _preview(self, plan: PrunePlan) -> Preview:
        layers = [
            {
                "layer": p.layer,
                "documents": p.documents,
                "bytes": p.bytes,
                "to_delete": p.to_delete,
                "bytes_to_free": p.bytes_to_free,
            }
            for p in plan.layers
        ]
        summary = {
            "older_than": plan.older_than,
            "layers": layers,
            "total_to_delete": plan.total_to_delete,
            "total_bytes_to_free": plan.total_bytes_to_free,
        }
        # What will change: the memories to delete per layer (new memories written meanwhile are
        # kept by the prune, so they do not make the plan stale; an old one written or deleted does).
        state = [[p.layer, p.to_delete] for p in plan.layers]
        return Preview(summary, state, plan.phrase, plan)

    def change(
        self, engine: Engine, params: dict[str, Any], preview: Preview, actor: str, progress: Progress
    ) -> Change:
        plan = preview.native
        run = engine.prune(
            plan.older_than_delta, list(plan.layer_names), source="plan", actor=actor, progress=progress
        )
        result = {
            "deleted": {r.layer: r.deleted for r in run.results},
            "bytes_freed": total_freed(run.results),
            "layers": {
                r.layer: {"deleted": r.deleted, "bytes_before": r.bytes_before, "bytes_after": r.bytes_after}
                for r in run.results
            },
            "note": run.note,
        }
        return Change(result, run)

    def verify(self, engine: Engine, params: dict[str, Any], preview: Preview, change: Change) -> Checks:
        from jamey_engine.preflight.prune_steps import PruneOutcome, verify_prune

        outcome = PruneOutcome(GO, preview.native, None, tuple(change.native.results), change.native.duration)
        return verify_prune(engine, outcome)


class DedupeAction(Action):
    name = "dedupe"
    scope = "ops:write"
    backup_first = True
    description = "Delete exact duplicate memories, keeping the oldest of each group."
    parameters = (Parameter("layer", "all, one layer, or a comma list of layers", _layers, default=None),)

    def check(self, raw: Any) -> dict[str, Any]:
        checked = super().check(raw)
        if checked["layer"] is None:
            checked["layer"] = _layers("all")
        return checked

    def preflight(self, engine: Engine, params: dict[str, Any]) -> Checks:
        from jamey_engine.preflight.prune_steps import prune_preflight

        return prune_preflight(engine, tuple(params["layer"]), backup_first=True)

    def preview(self, engine: Engine, params: dict[str, Any]) -> Preview:
        from jamey_engine.preflight.dedupe_steps import plan_dedupe

        for layer in params["layer"]:
            engine.memory.flush_layer(layer)  # unflushed writes count like the others
        plan = plan_dedupe(engine, tuple(params["layer"]))
        layers = [
            {
                "layer": p.layer,
                "documents": p.documents,
                "bytes": p.bytes,
                "groups": len(p.scan.groups),
                "to_delete": p.to_delete,
                "bytes_to_free": p.bytes_to_free,
            }
            for p in plan.layers
        ]
        summary = {
            "layers": layers,
            "total_to_delete": plan.total_to_delete,
            "total_bytes_to_free": plan.total_bytes_to_free,
        }
        state = [[p.layer, len(p.scan.groups), p.to_delete] for p in plan.layers]
        return Preview(summary, state, plan.phrase, plan)

    def change(
        self, engine: Engine, params: dict[str, Any], preview: Preview, actor: str, progress: Progress
    ) -> Change:
        run = engine.dedupe(list(preview.native.layer_names), source="plan", actor=actor, progress=progress)
        result = {
            "deleted": {r.layer: r.deleted for r in run.results},
            "layers": {
                r.layer: {
                    "groups": r.groups,
                    "deleted": r.deleted,
                    "bytes_before": r.bytes_before,
                    "bytes_after": r.bytes_after,
                }
                for r in run.results
            },
            "note": run.note,
        }
        return Change(result, run)

    def verify(self, engine: Engine, params: dict[str, Any], preview: Preview, change: Change) -> Checks:
        from jamey_engine.preflight.dedupe_steps import DedupeOutcome, verify_dedupe

        outcome = DedupeOutcome(
            GO, preview.native, None, tuple(change.native.results), change.native.duration
        )
        return verify_dedupe(engine, outcome)


class RetentionAction(Action):
    name = "retention"
    scope = "ops:write"
    backup_first = True
    description = "Apply every layer's retention policy now."

    def preflight(self, engine: Engine, params: dict[str, Any]) -> Checks | None:
        """A retention run in progress (here or in another process) is a Conflict at once, before
        the plan's backup: 45 parallel applies took 45 backups only to find the lock held. Asked
        shared, so parallel applies' questions never collide with one another."""
        from jamey_engine.retention.runs import run_lock

        with run_lock(engine, wait=False, probe=True):
            return None

    def preview(self, engine: Engine, params: dict[str, Any]) -> Preview:
        run = engine.apply_retention(dry_run=True, actor="plan")
        layers = [layer.as_dict() for layer in run.layers]
        total = sum(layer.deleted for layer in run.layers)
        state = [[row["layer"], row["max_age"], row["max_bytes"], row["delete_documents"]] for row in layers]
        summary = {"layers": layers, "total_to_delete": total}
        return Preview(summary, state, f"apply retention deleting {total} memories", run)

    def change(
        self, engine: Engine, params: dict[str, Any], preview: Preview, actor: str, progress: Progress
    ) -> Change:
        # wait=False: a run in progress elsewhere is a Conflict at once, no thread waits for it
        run = engine.apply_retention(actor=actor, progress=progress, wait=False)
        return Change(run.as_dict(), run)

    def verify(self, engine: Engine, params: dict[str, Any], preview: Preview, change: Change) -> Checks:
        deleted = {layer.layer: layer.deleted for layer in change.native.layers}
        checks = []
        for row in preview.summary["layers"]:
            layer = row["layer"]
            now = engine.memory.layer_size(layer).documents
            expected = row["documents"] - deleted.get(layer, 0)
            checks.append(
                Check(
                    f"{layer}: documents",
                    now >= expected,
                    f"{row['documents']} before, {deleted.get(layer, 0)} deleted, {now} now",
                )
            )
        if not checks:
            checks.append(Check("policies", True, "no layer has a policy: nothing changed"))
        return Checks("Verification", tuple(checks))


for _action in (PruneAction(), DedupeAction(), RetentionAction()):
    register(_action)
