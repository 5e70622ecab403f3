"""Latency and quality benchmarks (issue: benchmarks); each script prints what it measured here."""
