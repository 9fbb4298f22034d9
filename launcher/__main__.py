"""``python -m launcher``: the same program as ``lguest-launch``."""

import sys

from launcher.main import main

sys.exit(main())
