"""`python -m aggregator ...` is the `aggregator` command."""

from __future__ import annotations

import sys

from aggregator.entry import main

sys.exit(main())
