"""``jamey stack`` (what `make run` runs): the local stack on 127.0.0.1, supervised, until Ctrl-C;
``jamey stack status`` shows it from any terminal."""

from __future__ import annotations

import click

from jamey_engine import ports
from jamey_engine.cli.common import emit_json, get_engine

PORT = click.IntRange(1, 65535)


@click.group("stack", invoke_without_command=True)
@click.option(
    "--port", type=PORT, default=None, help=f"Service port [env: JAMEY_PORT; default {ports.SERVICE}]"
)
@click.option(
    "--prometheus-port",
    type=PORT,
    default=None,
    help=f"[env: JAMEY_PROMETHEUS_PORT; default {ports.PROMETHEUS}]",
)
@click.option(
    "--alertmanager-port",
    type=PORT,
    default=None,
    help=f"[env: JAMEY_ALERTMANAGER_PORT; default {ports.ALERTMANAGER}]",
)
@click.option(
    "--workbench-port",
    type=PORT,
    default=None,
    help=f"[env: JAMEY_WORKBENCH_PORT; default {ports.WORKBENCH}]",
)
@click.option("--workbench/--no-workbench", default=True, show_default=True)
@click.option(
    "--tls/--no-tls",
    default=None,
    help="Also run nginx (TLS 1.3, self-signed certificate) in front [env: JAMEY_STACK_TLS; default off]",
)
@click.option(
    "--nginx-https-port",
    type=PORT,
    default=None,
    help=f"[env: JAMEY_NGINX_HTTPS_PORT; default {ports.NGINX_HTTPS}]",
)
@click.option(
    "--nginx-http-port",
    type=PORT,
    default=None,
    help=f"[env: JAMEY_NGINX_HTTP_PORT; default {ports.NGINX_HTTP}]",
)
@click.option(
    "--nginx-workbench-port",
    type=PORT,
    default=None,
    help=f"[env: JAMEY_NGINX_WORKBENCH_PORT; default {ports.NGINX_WORKBENCH}]",
)
@click.option(
    "--scrape-interval",
    default=None,
    metavar="DURATION",
    help="Prometheus scrape and rule interval, e.g. 1s [default: prometheus/prometheus.yml's 15s]",
)
@click.option(
    "--restart-delay",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="Seconds before the first restart of a component; doubles with each further exit.",
)
@click.option(
    "--restart-delay-max",
    type=click.FloatRange(min=0.01),
    default=30.0,
    show_default=True,
    help="Longest wait between restarts, in seconds.",
)
@click.option(
    "--give-up-after",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Stop restarting a component after this many exits within --give-up-window.",
)
@click.option(
    "--give-up-window",
    type=click.FloatRange(min=0.1),
    default=120.0,
    show_default=True,
    help="Seconds over which exits are counted for --give-up-after.",
)
@click.pass_context
def group(
    ctx: click.Context,
    port: int | None,
    prometheus_port: int | None,
    alertmanager_port: int | None,
    workbench_port: int | None,
    workbench: bool,
    tls: bool | None,
    nginx_https_port: int | None,
    nginx_http_port: int | None,
    nginx_workbench_port: int | None,
    scrape_interval: str | None,
    restart_delay: float,
    restart_delay_max: float,
    give_up_after: int,
    give_up_window: float,
) -> None:
    """Start the service, Prometheus, Alertmanager and the workbench (and nginx with --tls),
    restart any that exits, and stop them all on Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from jamey_engine.durations import parse_duration
    from jamey_engine.errors import InvalidInput
    from jamey_engine.stack import Stack, StackPorts
    from jamey_engine.stack.supervisor import RestartPolicy

    settings = get_engine().settings
    if scrape_interval is not None:
        try:
            seconds = parse_duration(scrape_interval).total_seconds()
        except InvalidInput as err:
            raise InvalidInput(f"--scrape-interval: {err.message}") from None
        if seconds < 1 or seconds != int(seconds):
            raise InvalidInput(
                f"--scrape-interval must be whole seconds, 1s or more, got {scrape_interval!r}"
            )
        scrape_interval = f"{int(seconds)}s"
    ports = StackPorts.from_settings(
        settings,
        service=port,
        prometheus=prometheus_port,
        alertmanager=alertmanager_port,
        workbench=workbench_port,
        nginx_https=nginx_https_port,
        nginx_http=nginx_http_port,
        nginx_workbench=nginx_workbench_port,
    )
    policy = RestartPolicy(
        first_delay=restart_delay,
        max_delay=max(restart_delay, restart_delay_max),
        give_up_after=give_up_after,
        window=give_up_window,
    )
    stack = Stack(
        settings,
        ports,
        workbench=workbench,
        tls=settings.stack_tls if tls is None else tls,
        scrape_interval=scrape_interval,
        policy=policy,
        echo=click.echo,
    )
    stack.prepare()  # every refusal (a port in use, nginx's config) before anything starts
    key = stack.ensure_admin_key()
    if key:
        click.echo("No admin key existed, so one was created. It is shown only this once; keep it safe:")
        click.echo(f"\n    {key}\n")
        click.echo("Sign in to the workbench with it, or send it as `Authorization: Bearer <key>`.")
    click.echo(f"data dir      {settings.data_dir}")
    try:
        stack.start()
        click.echo("Ctrl-C stops everything.")
        code = stack.watch()
    finally:
        click.echo("stopping…")
        stack.stop()
        click.echo("stopped.")
    raise SystemExit(code)


@group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(as_json: bool) -> None:
    """Show each component of the stack running on this data dir: state, pid, restarts, uptime, URL."""
    from jamey_engine.stack.state import read_status

    settings = get_engine().settings
    result = read_status(settings.data_dir / "stack")
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(f"stack {result.state} (pid {result.pid})" + (f": {result.note}" if result.note else ""))
    click.echo(f"{'name':<13} {'state':<11} {'pid':>7} {'restarts':>8} {'uptime':>9}  url")
    for c in result.components:
        pid = str(c.pid) if c.pid else "-"
        uptime = _uptime(c.uptime_seconds)
        click.echo(f"{c.name:<13} {c.state:<11} {pid:>7} {c.restarts:>8} {uptime:>9}  {c.url}")


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
