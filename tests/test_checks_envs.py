"""The lesson-0 check accepts a correct action repeat and explains the usual mistakes."""
from __future__ import annotations

import pytest

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


def ignores_truncated(env, action, repeat):
    total = 0.0
    for _ in range(repeat):
        observation, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated:
            break
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


def old_gym_api(env, action, repeat):
    total = 0.0
    for _ in range(repeat):
        observation, reward, done, info = env.step(action)
        total += reward
        if done:
            break
    return observation, total, done, False, info


def first_observation(env, action, repeat):
    total, first = 0.0, None
    for _ in range(repeat):
        observation, reward, terminated, truncated, info = env.step(action)
        first = observation if first is None else first
        total += reward
        if terminated or truncated:
            break
    return first, total, terminated, truncated, info


def scaled_action(env, action, repeat):
    total = 0.0
    for _ in range(repeat):
        observation, reward, terminated, truncated, info = env.step(2 * action)
        total += reward
        if terminated or truncated:
            break
    return observation, total, terminated, truncated, info


def test_reference_passes(capsys):
    check_repeat_action(reference)
    assert "Exercise 0.1 passed" in capsys.readouterr().out


MISTAKES = {  # the mistake -> what the check's message must say
    last_reward_only: ["only the last frame's reward"],
    mean_reward: ["the mean of the rewards"],
    no_early_stop: ["ends (terminated)", "kept stepping after the episode ended"],
    ignores_truncated: ["ends (truncated)", "kept stepping after the episode ended"],
    one_step_too_many: ["stepped the env 3 time(s)"],
    old_gym_api: ["raised ValueError", "gymnasium env.step returns 5 values"],
    first_observation: ["observation of the LAST frame"],
    scaled_action: ["same action to every env.step call, unchanged"],
}


@pytest.mark.parametrize("wrong", MISTAKES)
def test_mistakes_are_explained(wrong, rejects):
    rejects(check_repeat_action, wrong, "Exercise 0.1", *MISTAKES[wrong])
