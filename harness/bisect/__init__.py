"""Regression bisecting: the pure loop, git as the oracle, the gate as the probe."""
