"""tqdm bars that stay readable in logs: refreshed often on a terminal, rarely in a file."""

from __future__ import annotations

import sys

from tqdm import tqdm


def bar(**kwargs) -> tqdm:
    interactive = sys.stderr.isatty()
    kwargs.setdefault("mininterval", 0.5 if interactive else 30.0)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(**kwargs)
