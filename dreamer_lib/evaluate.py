"""Evaluation: the policy's mode, no exploration noise; and the agent of a run folder or of a
shipped model folder, which `dreamer-eval RUN` (cli.py), lesson 7 and the debugger play."""
from __future__ import annotations

import contextlib
import pathlib

import numpy as np
import torch

from dreamer_lib.agent import DreamerV1
from dreamer_lib.config import Config
from dreamer_lib.envs import make_env, run_episode
from dreamer_lib.run_folder import RUN_ADVICE, read_checkpoint

SHIPPED_ADVICE = ("It ships with the course library: restore it from git in a clone of the course (git checkout -- "
                  "FILE), or reinstall the library (pip install --force-reinstall, as in the README).")


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
    """The agent of a dreamer-train run folder (its checkpoint.pt), or of a model folder that
    ships with the course (its model.pt: the weights in fp16 and the counters, no optimiser
    state; tools/export_pretrained.py), built with the folder's own config.json.

    Returns (agent, env, checkpoint). For a model folder, checkpoint["agent"] holds its weights and
    a fresh optimiser state, so code that continues training from a checkpoint (lesson 7) runs on
    both: there, Adam starts afresh, as in a new run."""
    run = pathlib.Path(run)
    config = load_run_config(run)
    if device:
        config = config.replace(device=device)
    shipped = (run / "model.pt").exists()
    if not shipped and not (run / "checkpoint.pt").exists():
        raise ValueError(f"{run} has no checkpoint.pt yet: it is written before the first episode. "
                         "Train (or resume the run) first.")
    env = make_env(config.env, config.action_repeat, config.time_limit, seed=config.seed + 20_000)
    agent = DreamerV1(config, env.action_space.shape[0])
    path = run / ("model.pt" if shipped else "checkpoint.pt")
    checkpoint = read_checkpoint(path, agent.device, advice=SHIPPED_ADVICE if shipped else RUN_ADVICE)
    if not isinstance(checkpoint, dict) or "agent" not in checkpoint:
        raise ValueError(f"{path} holds no agent: it was not written by dreamer-train or tools/export_pretrained.py.")
    if shipped:  # the weights alone, in fp16 (loading casts them to fp32): Adam starts afresh
        checkpoint["agent"]["optimizers"] = agent.checkpoint()["optimizers"]
    agent.load_checkpoint(checkpoint["agent"])
    agent.eval()
    return agent, env, checkpoint
