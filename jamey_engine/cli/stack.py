"""``jamey stack`` (what `make run` runs): the local stack on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import click

from jamey_engine.cli.common import get_engine


@click.command("stack")
@click.option("--port", type=int, default=None, help="Service port [env: JAMEY_PORT; default 3000]")
@click.option("--prometheus-port", type=int, default=9090, show_default=True)
@click.option("--alertmanager-port", type=int, default=9093, show_default=True)
@click.option("--workbench-port", type=int, default=None, help="[env: JAMEY_WORKBENCH_PORT; default 8501]")
@click.option("--workbench/--no-workbench", default=True, show_default=True)
def group(
    port: int | None,
    prometheus_port: int,
    alertmanager_port: int,
    workbench_port: int | None,
    workbench: bool,
) -> None:
    """Start the service, Prometheus, Alertmanager and the workbench; Ctrl-C stops them all."""
    from jamey_engine.stack import Stack, StackPorts

    settings = get_engine().settings
    ports = StackPorts(
        service=port or settings.port,
        prometheus=prometheus_port,
        alertmanager=alertmanager_port,
        workbench=workbench_port or settings.workbench_port,
    )
    stack = Stack(settings, ports, workbench=workbench, echo=click.echo)
    key = stack.ensure_admin_key()
    if key:
        click.echo("No admin key existed, so one was created. It is shown only this once; keep it safe:")
        click.echo(f"\n    {key}\n")
        click.echo("Sign in to the workbench with it, or send it as `Authorization: Bearer <key>`.")
    click.echo(f"data dir      {settings.data_dir}")
    stack.start()
    click.echo("Ctrl-C stops everything.")
    try:
        code = stack.watch()
    finally:
        click.echo("stopping…")
        stack.stop()
    raise SystemExit(code)
