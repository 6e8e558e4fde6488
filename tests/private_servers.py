"""Servers of a test's own, on free loopback ports, that the test can stop and start again.

The shared Redis and Mosquitto must stay up for every other test; a test that needs the
server to go down (and come back) starts one of these instead.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import free_port, wait_for_port


class PrivateServer:
    """One server process at a time on a fixed free port; ``stop`` then ``start`` brings it back."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            self.command(), cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (SIGTERM, which lets it save its state) and wait for it to exit."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def __enter__(self) -> PrivateServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PrivateRedis(PrivateServer):
    """A redis-server that keeps nothing on disk: a restart comes back empty."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]


class PrivateMosquitto(PrivateServer):
    """A Mosquitto that saves its sessions on SIGTERM, so persistent subscriptions survive a restart."""

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def command(self) -> list[str]:
        config = self.workdir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "user root\n"  # as root it would switch to the mosquitto user, which cannot write here
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            f"log_dest file {self.log_path}\n"
            "log_type all\n"
        )
        return ["mosquitto", "-c", str(config)]


class PrivateWebdav(PrivateServer):
    """A real ``rclone serve webdav`` of ``workdir/root`` behind a user and password, and the
    client's rclone config (0600) that reaches it: an off-site backup remote on loopback."""

    USER = "jamey"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.root = workdir / "root"
        self.root.mkdir(exist_ok=True)
        self.password = f"pw-{self.port}-{id(self):x}"
        self.config = workdir / "rclone.conf"
        obscured = subprocess.run(
            ["rclone", "obscure", "-"], input=self.password, capture_output=True, text=True, check=True
        ).stdout.strip()
        self.config.write_text(
            f"[store]\ntype = webdav\nurl = http://127.0.0.1:{self.port}/\nvendor = other\n"
            f"user = {self.USER}\npass = {obscured}\n"
        )
        self.config.chmod(0o600)

    def command(self) -> list[str]:
        htpasswd = self.workdir / "htpasswd"
        if not htpasswd.exists():
            line = subprocess.run(
                ["openssl", "passwd", "-apr1", "-stdin"],
                input=self.password,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            htpasswd.write_text(f"{self.USER}:{line}\n")
        return [
            "rclone",
            "serve",
            "webdav",
            str(self.root),
            "--addr",
            f"127.0.0.1:{self.port}",
            "--htpasswd",
            str(htpasswd),
        ]
