"""Benchmarks. Run all with `make bench` (python -m bench); one with python -m bench.bench_<area>."""
