"""Shared pytest setup: the real-peer harness fixtures live in tests/support."""

pytest_plugins = ["tests.support.fixtures"]
