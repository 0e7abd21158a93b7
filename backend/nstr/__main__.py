"""``python -m nstr`` is the same as the ``nstr`` console command."""

import sys

from nstr.cli import main

sys.exit(main())
