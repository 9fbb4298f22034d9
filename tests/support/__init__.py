"""Test helpers: the mount (``mount``), test guests (``guests``), the launcher (``launch``)."""
