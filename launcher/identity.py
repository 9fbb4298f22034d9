"""Making sure the package named ``launcher`` is lguestfs's, since the name is a common one.

The project's layout puts the launcher in a top-level package called ``launcher``, and
``pip install .`` installs it under that name beside ``lguestfs``.  Another distribution may ship
a top-level ``launcher`` too; Python then imports whichever comes first on ``sys.path``, and pip
merges two same-named packages in one ``site-packages`` without a word.  So, whenever this package
is imported and whenever ``lguest-launch`` or ``lguest-waker`` starts, :func:`check` refuses with
one clear line (an ``ImportError``) when:

* the ``launcher`` package in use is not this one: another distribution replaced its
  ``__init__.py`` (ours says ``__project__ = "lguestfs"``);
* the ``lguestfs`` it would import is not the one beside it: a launcher from one copy of the
  project would talk to the daemon's modules of another (a checkout and an installed copy mixed);
* another ``launcher`` (a package or a module that does not sit beside an ``lguestfs``) is on
  ``sys.path`` too: this package hides it, or is hidden by it wherever that one comes first.

What no code of ours can see is a foreign ``launcher`` ahead of this one on ``sys.path`` when this
one is never imported at all: then ``lguest-launch`` fails to import ``launcher.main``.  Installed
in a virtual environment of its own (README, "Installing"), lguestfs has no such neighbour.
"""

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

PROJECT = "lguestfs"
HERE = Path(__file__).resolve().parent  # this launcher package
HOME = HERE.parent  # where this copy of the project is importable from


def check() -> None:
    """Raise ImportError if ``launcher`` is not, or would hide, what this module says above."""
    package = sys.modules.get("launcher")
    if getattr(package, "__project__", None) != PROJECT:
        raise ImportError(
            f"the package 'launcher' at {HERE} is not lguestfs's (another distribution has "
            "replaced its __init__.py): reinstall lguestfs into a virtual environment of its own"
        )
    daemon = importlib.util.find_spec(PROJECT)
    origin = daemon.origin if daemon is not None else None
    if origin is None or Path(origin).resolve().parent.parent != HOME:
        raise ImportError(
            f"lguestfs's launcher at {HERE} would use the lguestfs package at "
            f"{Path(origin).parent if origin else '(none)'}, not the one beside it: two copies of "
            "lguestfs are mixed on sys.path"
        )
    for entry in sys.path:
        other = importlib.machinery.PathFinder.find_spec("launcher", [entry])
        if other is not None and other.origin is not None and not _is_a_copy_of_ours(other):
            raise ImportError(
                f"another top-level 'launcher' is installed at {other.origin}; lguestfs's "
                f"launcher at {HERE} hides it or is hidden by it: install lguestfs into a virtual "
                "environment of its own"
            )


def _is_a_copy_of_ours(spec: importlib.machinery.ModuleSpec) -> bool:
    """Is this ``launcher`` a package beside an ``lguestfs`` package (this copy or another)?"""
    location = Path(str(spec.origin)).resolve()
    return location.name == "__init__.py" and (location.parent.parent / PROJECT).is_dir()
