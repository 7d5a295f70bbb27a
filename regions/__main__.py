"""``python -m regions``: the ``regions`` command."""
import sys

from .cli import main

sys.exit(main())
