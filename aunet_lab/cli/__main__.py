"""`python -m aunet_lab.cli`: the same as the `aunet-lab` command."""

import sys

from aunet_lab.cli import main

sys.exit(main())
