"""``python -m fullspectrum`` is the command line."""

import sys

from fullspectrum.cli import main

sys.exit(main())
