"""``python -m router.chaos``."""

import sys

from router.chaos.cli import main

sys.exit(main())
