"""The console scripts' entry points. They import the library inside a try, so a Ctrl-C while
PyTorch is still loading (a few seconds) ends with a line, not a traceback, and status 130."""
from __future__ import annotations

import sys


def train() -> int:
    try:
        from dreamer_lib.train import main
    except KeyboardInterrupt:
        print("\nStopped during start-up; nothing was trained.", file=sys.stderr)
        return 130
    return main()


def evaluate() -> int:
    try:
        from dreamer_lib.evaluate import main
    except KeyboardInterrupt:
        return 130
    return main()
