"""Exercise checks: compare a learner's implementation with a reference on seeded inputs (the
library's own function, or torch's where torch has one) and say precisely what is wrong (shape,
dtype, max error, a missing or unwanted gradient...). References written independently of the
library live only in tests/.

Each lesson's checks live in a module named after the concept (checks.envs, checks.networks,
checks.buffer, checks.rssm, checks.world_model, checks.actor_critic); this module holds what they
share. A check prints one line when it passes and raises CheckFailed with an explanation when it
does not.
"""
from __future__ import annotations

import torch


class CheckFailed(AssertionError):
    pass


def fail(exercise: str, message: str) -> None:
    raise CheckFailed(f"Exercise {exercise}: {message}")


def passed(exercise: str, what: str) -> None:
    print(f"Exercise {exercise} passed: {what}")


def expect_shape(exercise: str, name: str, actual, expected_shape) -> None:
    if not isinstance(actual, torch.Tensor):
        fail(exercise, f"{name} should be a torch.Tensor; got {type(actual).__name__}.")
    if tuple(actual.shape) != tuple(expected_shape):
        fail(exercise, f"{name} has shape {tuple(actual.shape)}; expected {tuple(expected_shape)}.")


def expect_close(exercise: str, name: str, actual, expected, atol: float = 1e-5, rtol: float = 1e-4,
                 hint: str = "") -> None:
    """Shape first, then values, reporting the largest error and where it is."""
    expect_shape(exercise, name, actual, expected.shape)
    actual, expected = actual.detach().float(), expected.detach().float()
    if not torch.isfinite(actual).all():
        fail(exercise, f"{name} contains NaN or inf.")
    error = (actual - expected).abs()
    if not torch.allclose(actual, expected, atol=atol, rtol=rtol):
        index = tuple(int(i) for i in torch.nonzero(error == error.max())[0])
        fail(exercise, f"{name} differs from the reference: max error {error.max():.3g} at index {index} "
                       f"(yours {actual[index]:.5g}, expected {expected[index]:.5g})." + (f" {hint}" if hint else ""))


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
