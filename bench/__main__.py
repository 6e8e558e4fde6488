"""`make bench`: run every bench module, print one Markdown table, save JSON under bench/results/."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import pkgutil
import sys
import time
import traceback
from pathlib import Path

from bench.common import Row, format_table, machine


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("only", nargs="*", help="bench module names (e.g. memory keys); default all")
    args = parser.parse_args()
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if n.removeprefix("bench_") in args.only or n in args.only]
    all_rows: list[Row] = []
    failed = []
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            rows = module.main(args.quick) if inspect.signature(module.main).parameters else module.main()
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        print(f"   {time.perf_counter() - start:.1f}s", file=sys.stderr)
        all_rows.extend(rows)
    print(f"Machine: {machine()}\n")
    print(format_table(all_rows))
    out = here / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (out / f"{stamp}.json").write_text(json.dumps({"machine": machine(), "rows": all_rows}, indent=2))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
