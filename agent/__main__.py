"""``python -m agent`` is ``diemcau-agent``."""

import sys

from agent.cli import main

sys.exit(main())
