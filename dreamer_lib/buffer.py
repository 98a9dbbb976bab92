"""Episode replay buffer: whole episodes in, (seq_len, batch) windows out.

An episode is a dict of arrays with one row per agent step, the reset step included:
    image (L+1, 64, 64, 3) uint8   o_t
    action (L+1, A) float32        a_{t-1}, the action that led to o_t (zeros at reset)
    reward (L+1,) float32          r_t, received on arriving at o_t (0 at reset)
    not_terminal (L+1,) float32      0 where o_t is terminal, else 1
Each finished episode is written at once to `directory` as an .npz file (written to a temporary
name, then renamed, so a crash never leaves half a file), which is what makes a run resumable:
the episodes on disk are the record of everything collected.

Memory: frames are uint8, 64 * 64 * 3 = 12,288 bytes each, so 1M stored observations take
12.3 GB (the paper's 5M env frames at action repeat 2 are 2.5M observations, 31 GB). The buffer
keeps at most `capacity` observations in RAM and drops the oldest episodes beyond that; their
files stay on disk.
"""
from __future__ import annotations

import pathlib
import warnings
from collections import deque

import numpy as np

KEYS = ("image", "action", "reward", "not_terminal")
FRAME_BYTES = 64 * 64 * 3


def validate_episode(episode: dict) -> int:
    """Check an episode's keys, dtypes and lengths; return its number of rows (L + 1)."""
    missing = [k for k in KEYS if k not in episode]
    if missing:
        raise ValueError(f"An episode needs the arrays {KEYS}; this one lacks {missing}.")
    length = len(episode["image"])
    if episode["image"].dtype != np.uint8 or episode["image"].ndim != 4 or episode["image"].shape[-1] != 3:
        raise ValueError(f"episode['image'] must be uint8 frames (L+1, H, W, 3); got "
                         f"{episode['image'].dtype} {episode['image'].shape}.")
    for key in KEYS[1:]:
        if len(episode[key]) != length:
            raise ValueError(f"episode['{key}'] has {len(episode[key])} rows but episode['image'] has "
                             f"{length}: every array needs one row per step, the reset step included.")
    return length


class ReplayBuffer:
    def __init__(self, directory: str | pathlib.Path | None = None, capacity: int = 1_000_000, seed: int = 0):
        self.directory = pathlib.Path(directory) if directory else None
        self.capacity = capacity
        self.episodes: deque[dict] = deque()
        self.stored_steps = 0  # observations in RAM
        self.agent_steps = 0  # agent steps of every episode ever added, evicted or not
        self.total_episodes = 0
        self.rng = np.random.default_rng(seed)
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.episodes)

    def add_episode(self, episode: dict, save: bool = True) -> None:
        length = validate_episode(episode)
        episode = {k: np.asarray(episode[k]) for k in KEYS}
        if save and self.directory:
            # Number files after the newest one on disk (not by counting: a deleted file must not
            # make the next episode reuse, and overwrite, an existing name).
            indices = [int(p.name.split("-")[0]) for p in self.directory.glob("*.npz") if p.name[:6].isdigit()]
            path = self.directory / f"{max(indices, default=-1) + 1:06d}-{length - 1}.npz"
            temporary = path.with_suffix(".tmp.npz")
            np.savez_compressed(temporary, **episode)
            temporary.rename(path)
        self.episodes.append(episode)
        self.stored_steps += length
        self.agent_steps += length - 1  # the reset row is not a step
        self.total_episodes += 1
        while self.stored_steps > self.capacity and len(self.episodes) > 1:
            self.stored_steps -= len(self.episodes.popleft()["image"])

    def load(self, episodes: int | None = None) -> int:
        """Read the episode files in the directory (oldest first); skip unreadable ones with a
        warning. With `episodes`, read only the first that many and delete the later files: a
        resumed run recollects them exactly from its checkpoint. Returns how many were loaded."""
        loaded = 0
        for path in sorted(self.directory.glob("*.npz")):
            if path.name.endswith(".tmp.npz"):
                path.unlink()  # half-written by a process that was killed
                continue
            if episodes is not None and path.name[:6].isdigit() and int(path.name[:6]) >= episodes:
                path.unlink()
                continue
            try:
                with np.load(path) as data:
                    episode = {k: data[k] for k in KEYS}
                validate_episode(episode)
            except Exception as error:
                warnings.warn(f"Skipping episode file {path} ({type(error).__name__}: {error}). It is "
                              "damaged, perhaps from a crash while it was written; delete it to silence this.")
                continue
            self.add_episode(episode, save=False)
            loaded += 1
        return loaded

    def sample(self, batch_size: int, seq_len: int, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """B windows of T consecutive steps, time-major: image (T, B, 64, 64, 3), action (T, B, A),
        reward and not_terminal (T, B). As the official code: pick an episode uniformly among those at
        least T long, then a uniform start inside it, so no window crosses an episode end. (The
        official code also skips episodes exactly T long and never starts at the last possible
        step; docs/provenance.md.) rng: draw from another generator than the replay's own."""
        rng = rng or self.rng
        candidates = [e for e in self.episodes if len(e["image"]) >= seq_len]
        if not candidates:
            longest = max((len(e["image"]) for e in self.episodes), default=0)
            raise ValueError(f"No stored episode has {seq_len} steps to sample a window from (longest: "
                             f"{longest}). Collect more data or lower seq_len.")
        windows = {k: [] for k in KEYS}
        for index in rng.integers(len(candidates), size=batch_size):
            episode = candidates[index]
            start = rng.integers(len(episode["image"]) - seq_len + 1)
            for key in KEYS:
                windows[key].append(episode[key][start:start + seq_len])
        return {key: np.stack(value, axis=1) for key, value in windows.items()}
