"""Benchmarks (DESIGN: timings are measured here, never asserted in tests)."""
