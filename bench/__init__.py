"""Benchmarks: each prints a ratio against a baseline measured in the same run; timings are measured here, never asserted in tests."""
