"""``python -m edge_ems.cli``."""

import sys

from . import main

sys.exit(main())
