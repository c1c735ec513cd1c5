"""Benchmarks and the generated inputs they share with the tests (run from the repo root)."""
