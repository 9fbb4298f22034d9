"""``python -m lguestfs MOUNTPOINT``: the ``lguestfs`` command (see ``lguestfs.cli``)."""

import sys

from lguestfs.cli import main

sys.exit(main())
