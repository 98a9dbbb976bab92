"""Episode replay buffer: whole episodes in, (seq_len, batch) windows out.

An episode is a dict of arrays with one row per agent step, the reset step included:
    image (L+1, 64, 64, 3) uint8   o_t
    action (L+1, A) float32        a_{t-1}, the action that led to o_t (zeros at reset)
    reward (L+1,) float32          r_t, received on arriving at o_t (0 at reset)
    not_terminal (L+1,) float32    0 where o_t is terminal, else 1
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
FORMER_KEYS = {"discount": "not_terminal"}  # its name in episode files written before the rename
FRAME_BYTES = 64 * 64 * 3


def validate_episode(episode: dict, for_agent: bool = False) -> int:
    """Check an episode's keys, dtypes, lengths and values; return its number of rows (L + 1).
    for_agent: also check what the agent needs, as run_episode writes it: 64x64 frames and actions
    in [-1, 1] (episode files are checked so; the course's checks store tiny made-up episodes)."""
    missing = [k for k in KEYS if k not in episode]
    if missing:
        raise ValueError(f"An episode needs the arrays {KEYS}; this one lacks {missing}.")
    image, action, reward, not_terminal = (np.asarray(episode[k]) for k in KEYS)
    frames = "(L+1, 64, 64, 3)" if for_agent else "(L+1, H, W, 3)"
    if (image.dtype != np.uint8 or image.ndim != 4 or image.shape[-1] != 3 or len(image) == 0
            or (for_agent and image.shape[1:3] != (64, 64))):
        raise ValueError(f"episode['image'] must be uint8 frames {frames}, the reset frame included; got "
                         f"{image.dtype} {image.shape}.")
    length = len(image)
    for key, array, ndim in (("action", action, 2), ("reward", reward, 1), ("not_terminal", not_terminal, 1)):
        if not np.issubdtype(array.dtype, np.floating) or array.ndim != ndim:
            raise ValueError(f"episode['{key}'] must be floats {'(L+1, A)' if ndim == 2 else '(L+1,)'}; got "
                             f"{array.dtype} {array.shape}.")
        if len(array) != length:
            raise ValueError(f"episode['{key}'] has {len(array)} rows but episode['image'] has "
                             f"{length}: every array needs one row per step, the reset step included.")
        if not np.isfinite(array).all():  # one NaN reward would make every later loss NaN
            row = int(np.argwhere(~np.isfinite(array))[0][0])
            raise ValueError(f"episode['{key}'] holds NaN or inf (first in row {row}); it must hold finite "
                             "numbers: check the env or policy that produced it.")
    if for_agent and (np.abs(action) > 1).any():
        raise ValueError(f"episode['action'] has values outside [-1, 1] (up to {np.abs(action).max():g}): the "
                         "agent's actions lie in [-1, 1], which DreamerEnv scales to the env's range.")
    if not np.isin(not_terminal, (0, 1)).all():
        others = ", ".join(f"{v:g}" for v in np.setdiff1d(not_terminal, (0, 1))[:3])
        raise ValueError(f"episode['not_terminal'] must be 1, or 0 where o_t is terminal; it also holds {others}.")
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
        """Read the episode files in the directory (oldest first). A file that cannot be read, or
        holds an episode the agent cannot train on (validate_episode, for_agent=True), is skipped
        with a warning naming it and why; the others load. With `episodes`, load only the first
        that many and delete the later files: a resumed run recollects them exactly from its
        checkpoint. (Counted in loaded episodes, not file numbers: the checkpoint did not count a
        skipped file either.) Returns how many were loaded."""
        loaded = 0
        for path in sorted(self.directory.glob("*.npz")):
            if path.name.endswith(".tmp.npz"):
                path.unlink()  # half-written by a process that was killed
                continue
            if episodes is not None and path.name[:6].isdigit() and loaded >= episodes:
                path.unlink()
                continue
            try:
                with np.load(path) as data:
                    episode = {FORMER_KEYS.get(k, k): data[k] for k in data.files}
            except Exception as error:
                warnings.warn(f"Skipping episode file {path} ({type(error).__name__}: {error}). It is "
                              "damaged, perhaps from a crash while it was written; delete it to silence this.")
                continue
            try:
                validate_episode(episode, for_agent=True)
            except ValueError as error:
                warnings.warn(f"Skipping episode file {path}: {error} The agent cannot train on it; move it out "
                              f"of {self.directory} to silence this.")
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


def random_batch(batch_size: int, seq_len: int, action_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A random training batch in the layout ReplayBuffer.sample returns (the module docstring's
    arrays, time-major: a (seq_len, batch_size) lead instead of L+1), for what needs one without an
    env or a buffer: timing an update (benchmarks/throughput.py), the course's checks, the tests.
    Noise frames, actions uniform in [-1, 1], standard normal rewards, no terminal step
    (not_terminal all ones); drawn in that order from np.random.default_rng(seed), so a seed always
    gives the same batch."""
    rng = np.random.default_rng(seed)
    t, b = seq_len, batch_size
    return {"image": rng.integers(0, 256, (t, b, 64, 64, 3), dtype=np.uint8),
            "action": rng.uniform(-1, 1, (t, b, action_size)).astype(np.float32),
            "reward": rng.normal(size=(t, b)).astype(np.float32),
            "not_terminal": np.ones((t, b), np.float32)}
