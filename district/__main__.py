"""``python -m district`` is ``diemcau-district``."""

import sys

from district.cli import main

sys.exit(main())
