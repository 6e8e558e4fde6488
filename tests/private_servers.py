"""Servers of a test's own, on free loopback ports, that the test can stop and start again.

The shared Redis and Mosquitto must stay up for every other test; a test that needs the
server to go down (and come back) starts one of these instead.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from helpers import free_port, stop_process, wait_for_own_port


class PrivateServer:
    """One server process at a time on a free port of its own; ``stop`` then ``start`` brings
    it back on the same port, which this object holds bound while the server is down, so no
    other test worker's server is given it meanwhile."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._started_once = False
        self._reservation: socket.socket | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start the server and wait until it listens on its port itself.

        The first start moves to another free port if the server exits before it listens
        (another process took the port); a restart on the same port fails instead.
        """
        assert self.process is None, "already running"
        for _ in range(1 if self._started_once else 3):
            self._release()
            process = self.process = subprocess.Popen(
                self.command(), cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                listening = wait_for_own_port(process, self.port)
            except TimeoutError:
                self.stop()
                raise
            if listening:
                self._started_once = True
                return
            self.process = None
            if not self._started_once:
                self.port = free_port()
        raise AssertionError(f"{self.command()[0]} exited before it listened on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, which lets it save its state), wait for it to exit and
        hold its port until the next ``start``."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)
            self._reserve()

    def _reserve(self) -> None:
        # SO_REUSEADDR: the server's closed connections may still be in TIME_WAIT; bound is
        # enough to keep bind(port 0), which free_port uses, from handing the port out.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            return
        self._reservation = sock

    def _release(self) -> None:
        reservation, self._reservation = self._reservation, None
        if reservation is not None:
            reservation.close()

    def __enter__(self) -> PrivateServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._release()


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
