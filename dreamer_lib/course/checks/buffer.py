"""Checks for lesson 2: sampling (T, B) training windows from stored episodes (exercise 2.1).

The check feeds the learner's `sample_windows(episodes, batch_size, seq_len, rng)` synthetic
episodes whose rows say where they come from (reward = 1000 * episode + step; action and image
carry the step too), so every window can be traced back to its episode and start. It then checks,
in this order: the layout (keys, time-major shapes, dtypes), that every window is T consecutive
rows of one episode with all keys aligned, which episodes and starts can be drawn (too-short
episodes never, an episode of exactly T rows and the last valid start of every episode
sometimes), and finally that the draws equal `dreamer_lib.buffer.ReplayBuffer.sample` for the
same seed.
"""
from __future__ import annotations

import numpy as np

from dreamer_lib.buffer import KEYS, ReplayBuffer
from dreamer_lib.course.checks import call, fail, passed

EXERCISE = "2.1"
SEQ_LEN = 8


def make_episode(index: int, rows: int, size: int = 4) -> dict[str, np.ndarray]:
    """An episode of `rows` rows whose every array records (episode index, step)."""
    steps = np.arange(rows)
    image = np.zeros((rows, size, size, 3), np.uint8)
    image[..., 0] = steps[:, None, None] % 256
    image[..., 1] = index
    action = np.stack([np.full(rows, index), steps], axis=1).astype(np.float32)
    return {"image": image, "action": action, "reward": (1000 * index + steps).astype(np.float32),
            "not_terminal": np.ones(rows, np.float32)}


CUT_SHORT = (r"all input arrays must have the same shape|all the input array dimensions",
             "The windows you stack differ in length: a window that starts too late is cut short by the episode's "
             "end. Only starts 0..len(episode) - seq_len are valid: rng.integers(len(episode['image']) - seq_len + 1).")
HINTS = (CUT_SHORT,
         (r"high <= 0|low >= high", "rng.integers(n) needs n >= 1: an episode shorter than seq_len has no window; "
                                    "choose only among episodes with len(episode['image']) >= seq_len."))


def _call(sample_windows, episodes, batch_size, seq_len, seed, situation, cause=""):
    """sample_windows on these episodes; an exception is explained by the hints, or else by the
    situation's likely `cause`."""
    lengths = [len(e["image"]) for e in episodes]
    hints = (CUT_SHORT, (r"", cause)) if cause else HINTS
    return call(EXERCISE, sample_windows, episodes, batch_size, seq_len, np.random.default_rng(seed),
                what=f"{situation} (episode lengths {lengths}, seq_len={seq_len}), your function", hints=hints)


def _layout(batch, batch_size, seq_len, example) -> None:
    if not isinstance(batch, dict) or sorted(batch) != sorted(KEYS):
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        fail(EXERCISE, f"return a dict with the keys {list(KEYS)}, one array per key; got {got}.")
    for key in KEYS:
        value = np.asarray(batch[key])
        expected = (seq_len, batch_size, *example[key].shape[1:])
        if value.shape == expected:
            if value.dtype != example[key].dtype:
                fail(EXERCISE, f"batch['{key}'] has dtype {value.dtype}; keep the stored dtype "
                               f"{example[key].dtype} (images stay uint8 until the GPU, lesson 1's preprocess).")
            continue
        if value.shape == (batch_size, seq_len, *example[key].shape[1:]):
            fail(EXERCISE, f"batch['{key}'] has shape {value.shape}, which is batch-major (B, T, ...); the library "
                           f"is time-major: expected {expected} = (T, B, ...). Stack the windows on axis 1 "
                           "(np.stack(windows, axis=1)).")
        fail(EXERCISE, f"batch['{key}'] has shape {value.shape}; expected {expected} = (seq_len, batch_size, ...).")


def _trace(batch, situation) -> tuple[np.ndarray, np.ndarray]:
    """(episode index, start) of every window; fails if a window is not consecutive rows of one
    episode with all keys aligned."""
    reward = np.asarray(batch["reward"]).astype(np.int64)  # (T, B)
    episode, step = reward // 1000, reward % 1000
    for b in range(reward.shape[1]):
        if len(set(episode[:, b])) > 1:
            fail(EXERCISE, f"{situation}: window {b} mixes episodes {sorted(set(episode[:, b].tolist()))} (its "
                           f"steps: {step[:, b].tolist()}): it crosses an episode end. Pick one episode, then a start "
                           "inside it, and slice only that episode.")
        if not np.array_equal(np.diff(step[:, b]), np.ones(len(step) - 1)):
            fail(EXERCISE, f"{situation}: window {b} holds steps {step[:, b].tolist()} of episode {episode[0, b]}; "
                           "a window must be consecutive steps episode[key][start:start + seq_len].")
        image = np.asarray(batch["image"])[:, b, 0, 0]
        action = np.asarray(batch["action"])[:, b]
        if not (np.array_equal(image[:, 0], step[:, b] % 256) and np.array_equal(image[:, 1], episode[:, b])
                and np.array_equal(action[:, 1], step[:, b]) and np.array_equal(action[:, 0], episode[:, b])):
            fail(EXERCISE, f"{situation}: in window {b} the images or actions do not come from the same rows as the "
                           "rewards. Draw one (episode, start) per window and slice every key with it.")
    return episode[0], step[0]


def check_sample_windows(sample_windows) -> None:
    # 1. Layout and validity on long episodes.
    long = [make_episode(0, 12), make_episode(1, 20)]
    batch = _call(sample_windows, long, 5, SEQ_LEN, 0, "Sampling 5 windows")
    _layout(batch, 5, SEQ_LEN, long[0])
    _trace(batch, "Sampling 5 windows")

    # 2. An episode shorter than seq_len has no window; one of exactly seq_len rows has one.
    short, exact = make_episode(2, 5), make_episode(3, SEQ_LEN)
    _call(sample_windows, long + [short], 50, SEQ_LEN, 1, "With an episode shorter than seq_len in the list",
          cause="An episode shorter than seq_len has no window and must be skipped (choose only among episodes with "
                "len(episode['image']) >= seq_len).")
    _call(sample_windows, long + [exact], 50, SEQ_LEN, 1, "With an episode of exactly seq_len rows in the list",
          cause="That episode has exactly one window, start 0, so starts range over "
                "rng.integers(len - seq_len + 1) (numpy's upper bound is exclusive).")
    episodes = long + [short, exact]
    batch = _call(sample_windows, episodes, 600, SEQ_LEN, 2, "Sampling 600 windows")
    _layout(batch, 600, SEQ_LEN, episodes[0])
    index, start = _trace(batch, "Sampling 600 windows")
    if (index == 2).any():
        fail(EXERCISE, "a window came from the episode of 5 rows, shorter than seq_len=8: skip such episodes.")
    if not (index == 3).any():
        fail(EXERCISE, "in 600 windows none came from the episode of exactly seq_len=8 rows, which has one valid "
                       "window (start 0): keep episodes with len >= seq_len (not >).")
    for episode_index, rows in ((0, 12), (1, 20)):
        seen = set(start[index == episode_index].tolist())
        last = rows - SEQ_LEN
        if last not in seen:
            fail(EXERCISE, f"the episode of {rows} rows has valid starts 0..{last} (rows - seq_len), but start {last} "
                           f"never appeared in 600 windows (starts seen: {sorted(seen)}). Draw the start with "
                           "rng.integers(len - seq_len + 1): the upper bound is exclusive.")
        missing = sorted(set(range(last + 1)) - seen)
        if missing:
            fail(EXERCISE, f"the episode of {rows} rows never gave windows starting at {missing}; every start "
                           f"0..{last} should be equally likely.")
    share = np.bincount(index, minlength=4)[[0, 1, 3]] / len(index)
    if share[1] > 0.5:
        fail(EXERCISE, f"{share[1]:.0%} of the windows came from the longest episode (of 3 candidates): you are "
                       "picking episodes in proportion to their length (or windows uniformly over all starts). "
                       "As the official code, pick the episode uniformly first, then the start.")

    # 3. No episode long enough: an error, not an empty or broken batch.
    try:
        result = sample_windows([short], 2, SEQ_LEN, np.random.default_rng(0))
    except NotImplementedError:
        raise
    except Exception:
        result = None
    if result is not None:
        fail(EXERCISE, "with no episode of seq_len rows there is nothing to sample; raise a ValueError that says so "
                       "instead of returning a batch.")

    # 4. The same draws as the library, for the same seed.
    for seed in (3, 4):
        reference = ReplayBuffer(capacity=10**9, seed=seed)
        for episode in episodes:
            reference.add_episode(episode, save=False)
        expected = reference.sample(7, SEQ_LEN)
        actual = _call(sample_windows, episodes, 7, SEQ_LEN, seed, f"Sampling 7 windows with seed {seed}")
        _layout(actual, 7, SEQ_LEN, episodes[0])
        if not all(np.array_equal(actual[k], expected[k]) for k in KEYS):
            fail(EXERCISE, "your windows are valid but are not the draws of ReplayBuffer.sample with the same seed. "
                           "Use the rng passed in, in this order: first all episode indices at once, "
                           "rng.integers(len(candidates), size=batch_size) (candidates: the long-enough episodes in "
                           "their original order), then for each window in turn its start, "
                           "rng.integers(len(episode['image']) - seq_len + 1).")
    passed(EXERCISE, "windows are time-major, never cross an episode end, cover every valid start, skip "
                     "too-short episodes, and equal ReplayBuffer.sample's draws.")
