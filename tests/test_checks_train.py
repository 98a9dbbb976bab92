"""Exercise 6.1 (the schedule): the check passes the rule and names each usual mistake."""
from __future__ import annotations

import pytest

from dreamer_lib.course.checks import CheckFailed
from dreamer_lib.course.checks.train import check_updates_due


def right(env_frames, config):
    if env_frames < config.prefill_frames:
        return 0
    return config.train_updates * (1 + (env_frames - config.prefill_frames) // config.train_every)


def no_pretraining(env_frames, config):
    if env_frames < config.prefill_frames:
        return 0
    return config.train_updates * ((env_frames - config.prefill_frames) // config.train_every)


def from_frame_zero(env_frames, config):
    if env_frames < config.prefill_frames:
        return 0
    return config.train_updates * (1 + env_frames // config.train_every)


def agent_steps(env_frames, config):
    steps, prefill = env_frames // config.action_repeat, config.prefill_frames // config.action_repeat
    if steps < prefill:
        return 0
    return config.train_updates * (1 + (steps - prefill) // config.train_every)


def one_late(env_frames, config):
    if env_frames <= config.prefill_frames:
        return 0
    return config.train_updates * (1 + (env_frames - config.prefill_frames) // config.train_every)


def during_prefill(env_frames, config):
    return config.train_updates * (1 + env_frames // config.train_every)


def true_division(env_frames, config):
    if env_frames < config.prefill_frames:
        return 0
    return config.train_updates * (1 + (env_frames - config.prefill_frames) / config.train_every)


def doubled(env_frames, config):
    return 2 * right(env_frames, config)


def test_the_rule_passes(capsys):
    check_updates_due(right)
    assert "Exercise 6.1 passed" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, words", [
    (no_pretraining, "no updates right after the prefill"),
    (from_frame_zero, "counting the training intervals from frame 0"),
    (agent_steps, "agent steps in place of env frames"),
    (one_late, "one frame late"),
    (during_prefill, "updates during the prefill"),
    (true_division, "should return an int"),
    (doubled, "the updates owed by these env frames differ: "),
])
def test_each_mistake_is_named(mistake, words):
    with pytest.raises(CheckFailed, match="Exercise 6.1") as failure:
        check_updates_due(mistake)
    assert words in str(failure.value)


def test_a_crash_in_the_learners_code_is_the_checks_message():
    def broken(env_frames, config):
        return config.train_step * 2  # a typo: no such setting

    with pytest.raises(CheckFailed, match=r"Exercise 6\.1: calling your updates_due\(0, config\).*AttributeError"):
        check_updates_due(broken)
