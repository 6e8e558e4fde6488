"""A self-signed certificate for the local TLS front (``jamey stack --tls``), made once by openssl.

The certificate names ``localhost`` and ``127.0.0.1`` and lasts a year; the key (P-256) is
readable by its owner only. Clients trust it by loading the certificate file itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from jamey_engine.errors import Unavailable

DAYS = 365


@dataclass(frozen=True)
class CertificatePair:
    """A certificate file and its private key file."""

    certificate: Path
    key: Path


def ensure_self_signed(directory: Path) -> tuple[CertificatePair, bool]:
    """The pair in ``directory``, generated when missing; the flag says whether it was generated
    now. Raises Unavailable when openssl is missing or fails."""
    pair = CertificatePair(directory / "localhost.crt", directory / "localhost.key")
    if pair.certificate.is_file() and pair.key.is_file():
        return pair, False
    openssl = shutil.which("openssl")
    if openssl is None:
        raise Unavailable(
            "openssl not found, so no certificate can be made; install it with: apt-get install openssl"
        )
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    partial_key = directory / ".localhost.key.partial"
    partial_cert = directory / ".localhost.crt.partial"
    done = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(partial_key), "-out", str(partial_cert), "-days", str(DAYS),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(f"openssl could not make a certificate in {directory}: {last}")
    os.chmod(partial_key, 0o600)
    os.replace(partial_key, pair.key)
    os.replace(partial_cert, pair.certificate)
    return pair, True
