"""The `aggregator` console script: `edge` goes to the agent's light entry point,
everything else to the service's CLI (whose imports the agent does not need)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["edge"]:
        from aggregator.edge.main import main as edge_main

        return edge_main(args[1:])
    from aggregator.cli import main as cli_main

    return cli_main(args)
