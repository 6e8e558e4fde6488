"""The TLS front of `jamey stack --tls` against Mozilla's "modern" profile, checked by sslyze.

Reproduced: `sslyze --mozilla_config=modern` against the stack's nginx (1.22) failed on the key
exchange groups X448 and secp521r1 being offered (modern allows X25519, prime256v1, secp384r1) and
on a 365-day certificate (modern: at most 90 days). A self-signed certificate cannot pass path
validation; that is the one finding allowed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import free_port, wait_until
from stack.test_stack import healthy, read_until, start_stack, stop

from jamey_engine.stack.selfsigned import DAYS, RENEW_DAYS_LEFT, ensure_self_signed, lasts_another

# What a self-signed certificate cannot pass, and nothing else (sslyze names its criteria so).
ALLOWED = {"certificate_path_validation"}


def _sslyze_modern(port: int) -> tuple[str, set[str]]:
    """Run the sslyze CLI with --mozilla_config=modern; its output and the criteria it failed."""
    done = subprocess.run(
        [sys.executable, "-m", "sslyze", "--mozilla_config=modern", f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    _, title, compliance = output.upper().partition("COMPLIANCE AGAINST TLS CONFIGURATION")
    assert title and "MODERN" in compliance, output[-3000:]
    verdict = output[len(output) - len(compliance) :]
    assert "OK - Compliant" in verdict or "FAILED - Not compliant" in verdict, verdict
    return output, set(re.findall(r"^\s+\* (\w+):", verdict, flags=re.MULTILINE))


@pytest.mark.slow
def test_the_tls_stack_meets_the_modern_profile_but_for_the_self_signed_path(data_dir: Path) -> None:
    ports = {name: free_port() for name in ("service", "prometheus", "alertmanager")}
    https = free_port()
    flags = ("--tls", "--nginx-https-port", str(https), "--nginx-http-port", str(free_port()),
             "--nginx-workbench-port", str(free_port()))  # fmt: skip
    process = start_stack(data_dir, ports, None, *flags)
    try:
        read_until(process, "Ctrl-C stops everything")
        wait_until(
            lambda: healthy(f"https://127.0.0.1:{https}", verify=False), 60, "nginx over HTTPS", every=0.1
        )
        output, failed = _sslyze_modern(https)
    finally:
        stop(process)
    assert failed == ALLOWED, output[-4000:]


def _certificate_lasting(directory: Path, days: int) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(directory / "localhost.key"), "-out", str(directory / "localhost.crt"),
         "-days", str(days), "-subj", "/CN=localhost"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip


def test_the_self_signed_certificate_lasts_90_days_at_most(tmp_path: Path) -> None:
    pair, made = ensure_self_signed(tmp_path / "tls")
    assert made and DAYS <= 90
    assert lasts_another(pair.certificate, DAYS - 1) and not lasts_another(pair.certificate, DAYS + 1)
    assert ensure_self_signed(tmp_path / "tls") == (pair, False)  # fresh: kept


def test_a_certificate_near_its_end_is_made_again_at_start(tmp_path: Path) -> None:
    _certificate_lasting(tmp_path / "tls", RENEW_DAYS_LEFT - 1)
    old = (tmp_path / "tls" / "localhost.crt").read_bytes()
    pair, made = ensure_self_signed(tmp_path / "tls")
    assert made and pair.certificate.read_bytes() != old
    assert lasts_another(pair.certificate, DAYS - 1)
