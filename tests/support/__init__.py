"""Helpers shared by the test suites (processes, broker clean-up, images)."""
