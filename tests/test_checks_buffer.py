"""The lesson-2 check accepts the library's window sampling and catches the usual mistakes."""
from __future__ import annotations

import numpy as np
import pytest

from dreamer_lib.buffer import KEYS, ReplayBuffer
from dreamer_lib.course.checks.buffer import check_sample_windows, make_episode


def reference(episodes, batch_size, seq_len, rng):
    """The library's own sampling (which the lesson's solution reproduces draw for draw)."""
    buffer = ReplayBuffer()
    for episode in episodes:
        buffer.add_episode(episode, save=False)
    buffer.rng = rng
    return buffer.sample(batch_size, seq_len)


def batch_major(episodes, batch_size, seq_len, rng):
    batch = reference(episodes, batch_size, seq_len, rng)
    return {key: value.swapaxes(0, 1) for key, value in batch.items()}


def never_last_start(episodes, batch_size, seq_len, rng):
    candidates = [e for e in episodes if len(e["image"]) >= seq_len]
    windows = {k: [] for k in KEYS}
    for index in rng.integers(len(candidates), size=batch_size):
        episode = candidates[index]
        start = rng.integers(max(len(episode["image"]) - seq_len, 1))  # "fixed" the crash, not the bound
        for key in KEYS:
            windows[key].append(episode[key][start:start + seq_len])
    return {key: np.stack(value, axis=1) for key, value in windows.items()}


def off_by_one_crashes(episodes, batch_size, seq_len, rng):
    candidates = [e for e in episodes if len(e["image"]) >= seq_len]
    windows = {k: [] for k in KEYS}
    for index in rng.integers(len(candidates), size=batch_size):
        episode = candidates[index]
        start = rng.integers(len(episode["image"]) - seq_len)
        for key in KEYS:
            windows[key].append(episode[key][start:start + seq_len])
    return {key: np.stack(value, axis=1) for key, value in windows.items()}


def no_length_filter(episodes, batch_size, seq_len, rng):
    windows = {k: [] for k in KEYS}
    for index in rng.integers(len(episodes), size=batch_size):
        episode = episodes[index]
        start = rng.integers(len(episode["image"]) - seq_len + 1)
        for key in KEYS:
            windows[key].append(episode[key][start:start + seq_len])
    return {key: np.stack(value, axis=1) for key, value in windows.items()}


def concatenated(episodes, batch_size, seq_len, rng):
    """Treats the buffer as one long stream: windows cross episode ends."""
    stream = {k: np.concatenate([e[k] for e in episodes]) for k in KEYS}
    starts = rng.integers(len(stream["image"]) - seq_len + 1, size=batch_size)
    return {k: np.stack([stream[k][s:s + seq_len] for s in starts], axis=1) for k in KEYS}


def strict_length(episodes, batch_size, seq_len, rng):
    return reference([e for e in episodes if len(e["image"]) > seq_len], batch_size, seq_len, rng)


def length_weighted(episodes, batch_size, seq_len, rng):
    pairs = [(e, s) for e in episodes for s in range(len(e["image"]) - seq_len + 1)]
    if not pairs:
        raise ValueError("nothing to sample")
    chosen = [pairs[i] for i in rng.integers(len(pairs), size=batch_size)]
    return {k: np.stack([e[k][s:s + seq_len] for e, s in chosen], axis=1) for k in KEYS}


def interleaved_draws(episodes, batch_size, seq_len, rng):
    candidates = [e for e in episodes if len(e["image"]) >= seq_len]
    if not candidates:
        raise ValueError("nothing to sample")
    chosen = []
    for _ in range(batch_size):
        episode = candidates[rng.integers(len(candidates))]
        chosen.append((episode, rng.integers(len(episode["image"]) - seq_len + 1)))
    return {k: np.stack([e[k][s:s + seq_len] for e, s in chosen], axis=1) for k in KEYS}


def _windows(episodes, batch_size, seq_len, rng, start_bound=lambda rows, seq_len: rows - seq_len + 1):
    candidates = [e for e in episodes if len(e["image"]) >= seq_len]
    chosen = []
    for index in rng.integers(len(candidates), size=batch_size):
        episode = candidates[index]
        chosen.append((episode, rng.integers(start_bound(len(episode["image"]), seq_len))))
    return {k: np.stack([e[k][s:s + seq_len] for e, s in chosen], axis=1) for k in KEYS}


def no_value_error(episodes, batch_size, seq_len, rng):
    if not any(len(e["image"]) >= seq_len for e in episodes):
        return {k: np.zeros((seq_len, 0)) for k in KEYS}  # an empty batch instead of an error
    return _windows(episodes, batch_size, seq_len, rng)


def starts_too_late(episodes, batch_size, seq_len, rng):
    return _windows(episodes, batch_size, seq_len, rng, start_bound=lambda rows, seq_len: rows - seq_len + 2)


def test_reference_passes(capsys):
    check_sample_windows(reference)
    assert "Exercise 2.1 passed" in capsys.readouterr().out


MISTAKES = {  # the mistake -> what the check's message must say
    batch_major: ["batch-major (B, T, ...)", "time-major"],
    never_last_start: ["start 4 never appeared", "upper bound is exclusive"],
    off_by_one_crashes: ["exactly seq_len rows", "raised ValueError", "rng.integers(len - seq_len + 1)"],
    no_length_filter: ["shorter than seq_len", "raised ValueError", "must be skipped"],
    concatenated: ["mixes episodes", "crosses an episode end"],
    strict_length: ["exactly seq_len=8 rows", "not >"],
    length_weighted: ["in proportion to their length"],
    interleaved_draws: ["not the draws of ReplayBuffer.sample"],
    no_value_error: ["raise a ValueError"],
    starts_too_late: ["raised ValueError", "cut short by the episode's end"],
}


@pytest.mark.parametrize("wrong", MISTAKES)
def test_mistakes_are_caught(wrong, rejects):
    rejects(check_sample_windows, wrong, "Exercise 2.1", *MISTAKES[wrong])


def test_synthetic_episodes_are_valid_buffer_episodes():
    from dreamer_lib.buffer import validate_episode

    assert validate_episode(make_episode(3, 10)) == 10
