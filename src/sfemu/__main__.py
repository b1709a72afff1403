"""``python -m sfemu serve``."""

import sys

from .cli import main

sys.exit(main())
