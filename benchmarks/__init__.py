"""Runnable benchmark suites (not shipped in the wheel): ``python -m benchmarks.<name> --help``."""
