"""`make bench`: Safeshare measured against the real Temporal dev server and its own baselines.

Every figure is a ratio against a baseline measured in the same run, alternating, so it holds on a
noisy shared machine. `python -m benchmarks --help` for the options; docs/PERFORMANCE.md for the
method and the last full run's figures.
"""
