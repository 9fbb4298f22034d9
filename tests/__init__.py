"""The lguestfs test suite: real mounts, real processes (see ``tests/conftest.py``)."""
