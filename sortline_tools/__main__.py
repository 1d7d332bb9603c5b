"""``python -m sortline_tools`` is the ``sortline`` command."""

import sys

from sortline_tools.cli import main

sys.exit(main())
