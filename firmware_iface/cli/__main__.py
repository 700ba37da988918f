"""``python -m firmware_iface.cli``: the jointkit command."""

import sys

from firmware_iface.cli import main

sys.exit(main())
