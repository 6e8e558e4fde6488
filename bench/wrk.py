"""Load from Debian's `wrk`: one C thread, so it leaves the cores to the server it measures.

``run`` returns requests/s, the request count, p50/p99 latency (and p99.9 with a script), how
busy the machine's cores were over the run (``machine_busy``, 0-1, from /proc/stat), wrk's own
CPU per request (``wrk_cpu_us``) and, given the server's pid, the server's CPU per request (from
/proc, user + system, all of its threads and children). Any non-2xx answer or
socket error makes the run fail loudly: a benchmark of refusals measures nothing.
``requests_script`` writes a Lua script that cycles through prepared requests (paths or bodies),
so the server sees varied queries and contents, not one cached request.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
from pathlib import Path
from typing import Any

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live children (the workers of `jamey serve --workers N`)."""
    total = cpu_seconds(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            total += tree_cpu_seconds(int(child))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def machine_cpu_seconds() -> tuple[float, float]:
    """(idle, total) CPU seconds of the whole machine so far, every core (from /proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return (fields[3] + fields[4]) / tick, sum(fields) / tick


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk latency {text!r} not understood")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_rate(out: str) -> float:
    """Requests/s from any wrk report."""
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"wrk's report not understood:\n{out}")
    return float(match.group(1))


def parse(out: str) -> dict[str, Any]:
    """Requests/s, requests, p50/p99 ms from wrk's ``--latency`` report; raises on errors."""
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    count = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    if not (count and p50 and p99):
        raise RuntimeError(f"wrk's report not understood:\n{out}")
    result = {
        "rps": parse_rate(out),
        "requests": int(count.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
    }
    p999 = re.search(r"^p99\.9_us: (\d+)", out, re.MULTILINE)  # from requests_script's done()
    if p999 is not None:
        result["p999_ms"] = int(p999.group(1)) / 1000
    return result


def run(
    url: str,
    seconds: float,
    connections: int,
    *,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
    pid: int | None = None,
) -> dict[str, Any]:
    """One wrk run (one thread) against ``url``; see the module docstring for the fields."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    before = tree_cpu_seconds(pid) if pid else 0.0
    idle_before, total_before = machine_cpu_seconds()
    load_before = _children_cpu_seconds()
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60, check=False)
    idle_after, total_after = machine_cpu_seconds()
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse(done.stdout)
    result["machine_busy"] = 1 - (idle_after - idle_before) / max(1e-9, total_after - total_before)
    result["wrk_cpu_us"] = (_children_cpu_seconds() - load_before) / max(1, result["requests"]) * 1e6
    if pid:
        result["cpu_us"] = (tree_cpu_seconds(pid) - before) / max(1, result["requests"]) * 1e6
    return result


def _lua(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid Lua string literal for this text


def requests_script(path: Path, method: str, targets: list[str], bodies: list[str] | None = None) -> Path:
    """A wrk Lua script sending ``method`` to ``targets`` in turn (with ``bodies`` in turn, as JSON)."""
    lines = ["local targets = {" + ",".join(_lua(t) for t in targets) + "}"]
    if bodies is not None:
        lines.append("local bodies = {" + ",".join(_lua(b) for b in bodies) + "}")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    lines += [
        "local n = 0",
        "request = function()",
        "  n = n + 1",
        f"  local body = {'bodies[(n % #bodies) + 1]' if bodies is not None else 'nil'}",
        f"  return wrk.format({_lua(method)}, targets[(n % #targets) + 1], nil, body)",
        "end",
        # wrk's --latency report stops at p99; the tail beyond it is printed here.
        "done = function(summary, latency, requests)",
        '  io.write(string.format("p99.9_us: %d\\n", latency:percentile(99.9)))',
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
