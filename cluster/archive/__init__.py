"""Aeron Archive in pure Python, in Aeron's on-disk formats: segment files, catalog, recovery."""
