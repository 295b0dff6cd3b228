"""Benchmarks: `python -m benchmarks` runs the comparison suite; the other scripts run one topic each."""
