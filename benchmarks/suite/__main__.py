"""``python -m benchmarks.suite``."""

import sys

from .cli import main

sys.exit(main())
