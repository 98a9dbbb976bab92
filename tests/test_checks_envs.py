"""The lesson-0 check accepts a correct action repeat and explains the usual mistakes."""
from __future__ import annotations

import pytest

from dreamer_lib.course.checks import CheckFailed
from dreamer_lib.course.checks.envs import check_repeat_action


def reference(env, action, repeat):
    total = 0.0
    for _ in range(repeat):
        observation, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            break
    return observation, total, terminated, truncated, info


def last_reward_only(env, action, repeat):
    for _ in range(repeat):
        observation, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return observation, reward, terminated, truncated, info


def no_early_stop(env, action, repeat):
    total = 0.0
    for _ in range(repeat):
        observation, reward, terminated, truncated, info = env.step(action)
        total += reward
    return observation, total, terminated, truncated, info


def one_step_too_many(env, action, repeat):
    total = 0.0
    for _ in range(repeat + 1):
        observation, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated or truncated:
            break
    return observation, total, terminated, truncated, info


def mean_reward(env, action, repeat):
    observation, total, terminated, truncated, info = reference(env, action, repeat)
    return observation, total / repeat, terminated, truncated, info


def test_reference_passes(capsys):
    check_repeat_action(reference)
    assert "0.1 passed" in capsys.readouterr().out


@pytest.mark.parametrize("fn,message", [
    (last_reward_only, r"only the last frame's reward"),
    (mean_reward, r"the mean of the rewards"),
    (no_early_stop, r"kept stepping after the episode ended"),
    (one_step_too_many, r"stepped the env 3 time\(s\)"),
])
def test_mistakes_are_explained(fn, message):
    with pytest.raises(CheckFailed, match=message):
        check_repeat_action(fn)
