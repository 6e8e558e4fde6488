"""Benchmarks. Run all with `make bench` (python -m bench); one with python -m bench.bench_<area>.

Like every front door of the service, the benchmarks run under the owner-only umask, so the
data dirs they create pass the service's privacy check (a 0755 data dir is refused).
"""

from jamey_engine.privacy import set_private_umask

set_private_umask()
