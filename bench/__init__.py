"""Benchmarks: `python -m bench SCENARIO [--json]` (see docs/benchmarks.md)."""
