"""Reproducible performance measurements of turnjudge.

Each `bench_*.py` module exposes `main()` and writes `results/<name>.json`;
`python -m benchmarks` runs them all and rewrites `RESULTS.md` from the JSON files.
"""
