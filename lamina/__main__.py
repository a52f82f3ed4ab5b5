"""``python -m lamina`` runs the ``lamina`` command."""

import sys

from lamina.cli import main

sys.exit(main())
