"""Helpers shared by the test suites (importable as ``support`` because tests/conftest.py is on sys.path)."""
