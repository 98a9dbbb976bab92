"""Evaluation: the policy's mode, no exploration noise; and the agent of a run folder, which
`dreamer-eval RUN` (cli.py), lesson 7 and the debugger play."""
from __future__ import annotations

import contextlib
import pathlib

import numpy as np
import torch

from dreamer_lib.agent import DreamerV1
from dreamer_lib.config import Config
from dreamer_lib.envs import make_env, run_episode
from dreamer_lib.run_folder import read_checkpoint


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Run the block on torch's generators seeded with `seed`, then put them back as they were:
    an evaluation or a picture drawn inside never changes the random stream of training."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def evaluate(agent: DreamerV1, env, episodes: int, seed: int | None = None, should_stop=None):
    """Returns of `episodes` episodes with the actor's mode and no exploration noise, each from a
    fresh policy state, and the frames of the first one; `seed` reseeds the env's start states.
    None if should_stop() said yes before the end."""
    policy = lambda image, state: agent.policy(image, state, explore=False)  # noqa: E731
    returns, frames = [], None
    for i in range(episodes):
        episode = run_episode(env, policy, agent.initial_policy_state(), seed=seed if i == 0 else None,
                              should_stop=should_stop)
        if episode is None:
            return None
        returns.append(float(episode["reward"].sum()))
        frames = episode["image"] if frames is None else frames
    return np.array(returns), frames


def load_run_config(run: str | pathlib.Path) -> Config:
    path = pathlib.Path(run) / "config.json"
    if not path.exists():
        raise ValueError(f"{run} is not a dreamer-train run folder (it has no config.json). "
                         "Point at a folder that dreamer-train wrote, e.g. runs/pendulum-cpu-seed0.")
    return Config.from_json(path.read_text(), source=path)


def load_agent(run: str | pathlib.Path, device: str | None = None):
    """The agent of a dreamer-train run folder, built with the run's own config.json."""
    run = pathlib.Path(run)
    config = load_run_config(run)
    if device:
        config = config.replace(device=device)
    if not (run / "checkpoint.pt").exists():
        raise ValueError(f"{run} has no checkpoint.pt yet: it is written before the first episode. "
                         "Train (or resume the run) first.")
    env = make_env(config.env, config.action_repeat, config.time_limit, seed=config.seed + 20_000)
    agent = DreamerV1(config, env.action_space.shape[0])
    checkpoint = read_checkpoint(run / "checkpoint.pt", agent.device)
    if not isinstance(checkpoint, dict) or "agent" not in checkpoint:
        raise ValueError(f"{run / 'checkpoint.pt'} holds no agent: it was not written by dreamer-train.")
    agent.load_checkpoint(checkpoint["agent"])
    agent.eval()
    return agent, env, checkpoint
