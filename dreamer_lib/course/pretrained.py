"""Trained models that ship with the course, loaded by name, so that lesson 7, driving the dream
and the debugger show a trained agent at once, at every scale, with no training first.

    from dreamer_lib.course.pretrained import pretrained
    agent, env, checkpoint = load_agent(pretrained("pendulum-cpu"))   # dreamer_lib.evaluate
    dreamer-eval pretrained:pendulum-cpu                                # the same, from a terminal

A model folder, dreamer_lib/course/models/NAME/, is written from a finished run by
`python tools/export_pretrained.py RUN NAME`: config.json (the run's), model.pt (the agent's
weights in fp16, no optimiser state, checksummed as a checkpoint), eval.csv (the run's eval
curve), metrics.csv (its training metrics), episodes/ (a few of the run's episodes, which the
debugger replays) and CARD.md (how it was trained, what it can do, and the result of
`check_returns`, which the tests repeat).
DREAMER_MODELS=PATH puts the models folder elsewhere (the export tool writes there too).
"""
from __future__ import annotations

import os
import pathlib

import numpy as np
import torch

from dreamer_lib.evaluate import evaluate, seeded

MODELS = pathlib.Path(__file__).parent / "models"  # installed with the package (pyproject: package-data)
CHECK_SEED, CHECK_EPISODES = 0, 3


def models_dir() -> pathlib.Path:
    return pathlib.Path(os.environ["DREAMER_MODELS"]).expanduser() if os.environ.get("DREAMER_MODELS") else MODELS


def available() -> list[str]:
    """The names of the models in the models folder."""
    return sorted(path.parent.name for path in models_dir().glob("*/model.pt"))


def pretrained(name: str = "pendulum-cpu") -> pathlib.Path:
    """The folder of the shipped model `name`, for `evaluate.load_agent`."""
    folder = models_dir() / name
    if not (folder / "model.pt").is_file():
        names = available()
        raise ValueError(f"No pretrained model {name!r} in {models_dir()}. "
                         + (f"Available: {', '.join(names)}." if names else
                            "None ships with this copy of the course yet: train a run (dreamer-train) and load "
                            "its folder instead."))
    return folder


def check_returns(agent, env, seed: int = CHECK_SEED, episodes: int = CHECK_EPISODES) -> np.ndarray:
    """The short seeded evaluation that a model's card records and tests/test_pretrained.py repeats:
    `evaluate` under `seeded`, on one CPU thread (as the tests run), since the thread count can
    change a float's last bits and with them a trajectory."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with seeded(seed, agent.device):
            return evaluate(agent, env, episodes, seed=seed)[0]
    finally:
        torch.set_num_threads(threads)
