"""``python -m fullspectrum`` is the command line (:func:`fullspectrum.cli.main`).

Ctrl-C even while the command line itself imports is one line and exit 130 (SPEC §8).
"""

import sys

try:
    from fullspectrum.cli import main  # in a try: Ctrl-C while importing is one line too
except KeyboardInterrupt:
    sys.stderr.write("fullspectrum: interrupted\n")
    sys.exit(130)

sys.exit(main())
