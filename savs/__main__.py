"""``python -m savs ...``: the ``savs`` command (see ``savs.cli``)."""

import sys

from savs.cli import main

sys.exit(main())
