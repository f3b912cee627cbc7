"""``python -m learned_lr.cli``: the same as the ``learned-lr`` command."""

import sys

from learned_lr.cli import main

sys.exit(main())
