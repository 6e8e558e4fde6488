"""Render nginx/jamey.conf from nginx/jamey.conf.template: ports, certificate paths, upstreams
and limits in one validated place.

``render(NginxSettings(...))`` returns the site file (for nginx's http block); nginx/jamey.conf
in the repository is ``render(NginxSettings())``, the documented defaults. ``render_standalone``
wraps a site file in a complete nginx.conf that runs unprivileged under one prefix directory
(``nginx -p DIR -c DIR/nginx.conf``), as the tests do. From a shell::

    python -m jamey_engine.nginxconf --server-name jamey.example.com \\
        --certificate /etc/ssl/jamey/fullchain.pem --certificate-key /etc/ssl/jamey/privkey.pem
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from jamey_engine import ports, sizes
from jamey_engine.errors import InvalidInput
from jamey_engine.security_headers import WORKBENCH_CSP

TEMPLATE = Path(__file__).resolve().parent.parent / "nginx" / "jamey.conf.template"
INTERNAL_NETWORKS = ("127.0.0.1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
_HOST = r"[A-Za-z0-9_.*-]+|\[[0-9A-Fa-f:]+\]"


@dataclass(frozen=True)
class NginxSettings:
    """Everything that differs between installations. Defaults are the documented ones."""

    server_name: str = "jamey.example.com"
    listen_address: str = ""  # empty: every address; "127.0.0.1" for a local-only proxy
    http_port: int = 80
    https_port: int = 443
    workbench_port: int = ports.NGINX_WORKBENCH  # as under `jamey stack --tls`
    certificate: str = "/etc/ssl/jamey/fullchain.pem"
    certificate_key: str = "/etc/ssl/jamey/privkey.pem"
    service_upstream: str = f"{ports.LOCALHOST}:{ports.SERVICE}"
    workbench_upstream: str = f"{ports.LOCALHOST}:{ports.WORKBENCH}"
    rate: str = "10r/s"
    burst: int = 20
    max_body: str = f"{sizes.MAX_BODY_BYTES // sizes.MiB}m"  # JAMEY_MAX_BODY_BYTES's default
    metrics_allow: tuple[str, ...] = INTERNAL_NETWORKS

    def validate(self) -> None:
        """Raise InvalidInput naming the first field whose value nginx would misread."""
        for name in ("http_port", "https_port", "workbench_port"):
            port = getattr(self, name)
            if not isinstance(port, int) or not 0 < port < 65536:
                raise InvalidInput(f"{name} must be a port between 1 and 65535, got {port!r}")
        if len({self.http_port, self.https_port, self.workbench_port}) != 3:
            raise InvalidInput(
                f"http_port, https_port and workbench_port must differ, got "
                f"{self.http_port}, {self.https_port}, {self.workbench_port}"
            )
        if not re.fullmatch(rf"({_HOST})( ({_HOST}))*", self.server_name):
            raise InvalidInput(
                f"server_name must be host names separated by spaces, got {self.server_name!r}"
            )
        if self.listen_address and not re.fullmatch(_HOST, self.listen_address):
            raise InvalidInput(
                f"listen_address must be an address such as 127.0.0.1, got {self.listen_address!r}"
            )
        for name in ("certificate", "certificate_key"):
            value = getattr(self, name)
            if not value or re.search(r"[\s;{}'\"$]", value):
                raise InvalidInput(
                    f"{name} must be a file path without spaces, quotes or ;{{}}$, got {value!r}"
                )
        for name in ("service_upstream", "workbench_upstream"):
            value = getattr(self, name)
            if not re.fullmatch(rf"({_HOST}):\d{{1,5}}|unix:/[^\s;{{}}'\"$]+", value):
                raise InvalidInput(f"{name} must be host:port or unix:/path, got {value!r}")
        if not re.fullmatch(r"[1-9]\d*r/[sm]", self.rate):
            raise InvalidInput(f"rate must look like 10r/s or 600r/m, got {self.rate!r}")
        if not isinstance(self.burst, int) or self.burst < 0:
            raise InvalidInput(f"burst must be a whole number, zero or above, got {self.burst!r}")
        if not re.fullmatch(r"\d+[kKmMgG]?", self.max_body):
            raise InvalidInput(f"max_body must be a size such as 4m, got {self.max_body!r}")
        if not self.metrics_allow:
            raise InvalidInput("metrics_allow must name at least one address or network")
        for network in self.metrics_allow:
            try:
                ipaddress.ip_network(network)
            except ValueError:
                raise InvalidInput(
                    f"metrics_allow entries must be addresses or networks, got {network!r}"
                ) from None


def render(settings: NginxSettings | None = None, template: Path = TEMPLATE) -> str:
    """The site configuration for ``settings`` (defaults when None). Raises InvalidInput."""
    settings = settings or NginxSettings()
    settings.validate()
    listen = ""
    if settings.listen_address:
        listen = f"{settings.listen_address}:"
    values = {
        "server_name": settings.server_name,
        "listen": listen,
        "http_port": str(settings.http_port),
        "https_port": str(settings.https_port),
        "https_port_suffix": "" if settings.https_port == 443 else f":{settings.https_port}",
        "workbench_port": str(settings.workbench_port),
        "certificate": settings.certificate,
        "certificate_key": settings.certificate_key,
        "service_upstream": settings.service_upstream,
        "workbench_upstream": settings.workbench_upstream,
        "rate": settings.rate,
        "burst": str(settings.burst),
        "max_body": settings.max_body,
        "workbench_csp": WORKBENCH_CSP,
        "metrics_allow": "\n".join(f"        allow {network};" for network in settings.metrics_allow),
    }

    def fill(match: re.Match[str]) -> str:
        return values[match.group(1)]

    text = re.sub(r"\{\{(\w+)\}\}", fill, template.read_text())
    return text


def render_standalone(site_conf: Path, prefix: Path) -> str:
    """A complete nginx.conf including ``site_conf`` with every runtime path under ``prefix``:
    pid, logs and temp files. Run it with ``nginx -p PREFIX -c PREFIX/nginx.conf``."""
    user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;

events {{
    worker_connections 256;
}}

http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site_conf};
}}
"""


def main(argv: list[str] | None = None) -> int:
    """Print the rendered site configuration; flags override the defaults."""
    defaults = NginxSettings()
    parser = argparse.ArgumentParser(prog="python -m jamey_engine.nginxconf", description=main.__doc__)
    for field in fields(NginxSettings):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if field.name == "metrics_allow":
            parser.add_argument(flag, nargs="+", default=list(default), help=f"default: {' '.join(default)}")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"default: {default!r}")
    args = parser.parse_args(argv)
    values = vars(args)
    values["metrics_allow"] = tuple(values["metrics_allow"])
    try:
        sys.stdout.write(render(NginxSettings(**values)))
    except InvalidInput as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
