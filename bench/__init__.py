"""Benchmarks: each reports ratios against a baseline measured in the same run (machines are noisy); timings are measured here, never asserted in tests."""
