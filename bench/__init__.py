"""Benchmarks that anyone can rerun: `python -m bench.search` (or `make bench`)."""
