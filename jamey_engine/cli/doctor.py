"""``jamey doctor``: permissions, ownership, free space, database version, layers, backups."""

from __future__ import annotations

import click

from jamey_engine.cli.common import emit_json, get_engine

MARKS = {"ok": "ok  ", "warning": "WARN", "problem": "FAIL"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_context
def group(ctx: click.Context, as_json: bool) -> None:
    """Check everything that may need action, read-only; exit 1 when something does."""
    from jamey_engine import doctor

    report = doctor.run(get_engine().settings)
    if as_json:
        emit_json(report.to_dict())
    else:
        for finding in report.findings:
            line = f"{MARKS.get(finding.status, finding.status)}  {finding.check}: {finding.detail}"
            if finding.fix and finding.status != "ok":
                line += f"\n      fix: {finding.fix}"
            click.echo(line)
        problems = sum(1 for finding in report.findings if finding.status == "problem")
        click.echo(f"{problems} problem(s) need action" if problems else "nothing needs action")
    if report.needs_action:
        ctx.exit(1)
