"""Test helpers: the mount (``mount``), test guests (``guests``), the launcher (``launch``),
waiting for other processes (``polling``)."""

import os

# Soak runs: ``LGUESTFS_LONG=1`` makes the reliability tests do ten times as much.
LONG = os.environ.get("LGUESTFS_LONG") == "1"
