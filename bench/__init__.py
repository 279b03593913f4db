"""Benchmarks: each prints a ratio against a baseline measured in the same run (timings live here, never in tests)."""
