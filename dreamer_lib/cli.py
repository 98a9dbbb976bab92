"""The console scripts' entry points. They import the library inside a try, so a Ctrl-C while
PyTorch is still loading (a few seconds) ends with a line, not a traceback, and status 130.

This is where the two layers meet: `dreamer-train --components FILE` checks a learner's functions
with the course's exercise checks before the trainer (the algorithm) uses them. No other module
of the algorithm reaches the course, and none imports this one (tests/test_layers.py)."""
from __future__ import annotations

import sys


def train() -> int:
    try:
        from dreamer_lib.train import main
    except KeyboardInterrupt:
        print("\nStopped during start-up; nothing was trained.", file=sys.stderr)
        return 130
    return main(check_components=check_with_course)


def check_with_course(components: dict, source) -> None:
    from dreamer_lib.course.components import check_components  # imported only when --components is used

    check_components(components, source)


def evaluate() -> int:
    try:
        from dreamer_lib.evaluate import main
    except KeyboardInterrupt:
        return 130
    return main()
