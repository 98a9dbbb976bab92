"""What an update costs, measured the one way lesson 8 and benchmarks/update_cost.py both use:
one agent per setting on one random batch, timed in alternating rounds, so that a busy or
throttled machine slows every setting alike (compare them within one call only)."""
from __future__ import annotations

import time

import torch

from dreamer_lib.agent import DreamerV1
from dreamer_lib.buffer import random_batch
from dreamer_lib.config import Config


def update_times(configs: dict[str, Config], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds of each of `rounds` updates per setting. The untimed warm-up updates also build
    the convolutions' kernels."""
    agents = {}
    for name, config in configs.items():
        torch.manual_seed(0)
        agent, batch = DreamerV1(config, 1), random_batch(config.batch_size, config.seq_len, 1, seed=0)
        for _ in range(warmup):
            agent.update(batch)
        agents[name] = (agent, batch)
    times = {name: [] for name in configs}
    for _ in range(rounds):
        for name, (agent, batch) in agents.items():
            started = time.perf_counter()
            agent.update(batch)
            times[name].append(time.perf_counter() - started)
    return times
