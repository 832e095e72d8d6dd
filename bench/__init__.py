"""Benchmarks of simple-gateway against the mock upstream: `python bench/run.py` (see README.md)."""
