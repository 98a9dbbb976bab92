"""Shared settings and helpers for the dreamer_lib tests.

The tests are written to run in about a minute on a small, busy CPU: every model uses the `ci`
preset (or smaller), every run folder lives in pytest's tmp_path.
"""
from __future__ import annotations

import matplotlib

# viz draws figures; no screen is needed. Set here, in-process only: an MPLBACKEND variable would
# reach the notebook kernels that nbval starts and hide their figures.
matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny models gain nothing from threads, and the test machine may be shared with training runs.
torch.set_num_threads(1)


def square_episode(length: int, rng: np.random.Generator, size: int = 64, square: int = 12,
                   action_size: int = 2) -> dict[str, np.ndarray]:
    """A synthetic episode in the replay buffer's format: a white square on black moves by the
    action (4 pixels per unit of action, per axis); the reward is a function of its position
    (1 at the centre of the frame, falling off linearly). `length` rows, the reset row included."""
    position = rng.integers(0, size - square, size=2).astype(np.float64)
    images = np.zeros((length, size, size, 3), np.uint8)
    actions = np.zeros((length, action_size), np.float32)
    rewards = np.zeros(length, np.float32)
    centre = (size - square) / 2
    for t in range(length):
        if t > 0:
            actions[t] = rng.uniform(-1, 1, size=action_size)
            position = np.clip(position + 4 * actions[t][:2], 0, size - square)
        y, x = position.astype(int)
        images[t, y:y + square, x:x + square] = 255
        if t > 0:
            rewards[t] = 1 - np.abs(position - centre).sum() / (2 * centre)
    return {"image": images, "action": actions, "reward": rewards, "not_terminal": np.ones(length, np.float32)}


@pytest.fixture
def make_square_episode():
    return square_episode


def _rejects(check, wrong, *phrases: str, absent=()) -> str:
    from dreamer_lib.course.checks import CheckFailed

    with pytest.raises(CheckFailed) as failure:
        check(wrong)
    message = str(failure.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in the message:\n{message}"
    for phrase in absent:
        assert phrase not in message, f"{phrase!r} in the message:\n{message}"
    assert "max error" not in message, f"the message does not name the mistake:\n{message}"
    return message


@pytest.fixture
def rejects():
    """rejects(check, wrong, *phrases, absent=()): `check(wrong)` must raise CheckFailed with a
    message that contains every phrase (literally) and none of `absent`, and names the mistake
    rather than only the generic "max error at index ..."; returns the message. For the tests of
    the course's checks: each gives a learner's mistake, written as a learner would."""
    return _rejects
