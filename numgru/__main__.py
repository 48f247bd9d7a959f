"""``python -m numgru``: the ``numgru`` command (:func:`numgru.cli.main`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
