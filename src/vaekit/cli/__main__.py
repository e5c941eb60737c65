"""``python -m vaekit.cli``: the same as the ``vaekit`` command."""

import sys

from vaekit.cli.main import main

sys.exit(main())
