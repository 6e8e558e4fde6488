"""A self-signed certificate for the local TLS front (``jamey stack --tls``), made once by openssl.

The certificate names ``localhost`` and ``127.0.0.1`` and lasts 90 days (Mozilla's "modern" profile
allows no longer); the stack makes a new one when it starts with less than 30 days left. The key
(P-256) is readable by its owner only. Clients trust it by loading the certificate file itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from jamey_engine.errors import Unavailable

DAYS = 90
RENEW_DAYS_LEFT = 30  # a certificate with less left than this is made again


@dataclass(frozen=True)
class CertificatePair:
    """A certificate file and its private key file."""

    certificate: Path
    key: Path


def _openssl() -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise Unavailable(
            "openssl not found, so no certificate can be made; install it with: apt-get install openssl"
        )
    return openssl


def lasts_another(certificate: Path, days: int) -> bool:
    """True when ``certificate`` is readable and still valid ``days`` days from now."""
    done = subprocess.run(
        [_openssl(), "x509", "-checkend", str(days * 86400), "-noout", "-in", str(certificate)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode == 0


def ensure_self_signed(directory: Path) -> tuple[CertificatePair, bool]:
    """The pair in ``directory``, generated when missing, unreadable, or valid for less than
    RENEW_DAYS_LEFT more days; the flag says whether it was generated now. Raises Unavailable when
    openssl is missing or fails."""
    pair = CertificatePair(directory / "localhost.crt", directory / "localhost.key")
    if pair.certificate.is_file() and pair.key.is_file() and lasts_another(pair.certificate, RENEW_DAYS_LEFT):
        return pair, False
    openssl = _openssl()
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
