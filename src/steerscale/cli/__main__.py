"""`python -m steerscale.cli`: the `steerscale` command."""

import sys

from . import main

sys.exit(main())
