"""Checks for lesson 0: action repeat over a raw gymnasium env (exercise 0.1).

The check drives the learner's `repeat_action(env, action, repeat)` on a scripted env whose
k-th frame (k = 1, 2, ...) gives reward k and observation k, ends when told to, and records every
action it receives, so that each usual mistake leaves a distinct trace.
"""
from __future__ import annotations

import numpy as np

from dreamer_lib.course.checks import call, fail, passed

EXERCISE = "0.1"


class ScriptedEnv:
    """Frame k (counted from 1 after reset) returns observation [k], reward k, and ends the
    episode at frame `end` (terminated or truncated, as `how` says). Stepping past the end raises."""

    def __init__(self, end: int = 1000, how: str = "terminated"):
        self.end, self.how = end, how
        self.frames, self.actions, self.over = 0, [], False

    def reset(self, seed=None, options=None):
        self.frames, self.actions, self.over = 0, [], False
        return np.array([0.0]), {}

    def step(self, action):
        if self.over:
            raise RuntimeError("ScriptedEnv.step() was called after the episode ended")
        self.frames += 1
        self.actions.append(np.array(action, copy=True))
        done = self.frames >= self.end
        self.over = done
        return (np.array([float(self.frames)]), float(self.frames), done and self.how == "terminated",
                done and self.how == "truncated", {"frame": self.frames})


HINTS = (
    (r"not enough values to unpack \(expected 5|too many values to unpack \(expected 4\)",
     "A gymnasium env.step returns 5 values: observation, reward, terminated, truncated, info (the old gym API "
     "returned 4, with a single done)."),
    (r"not enough values to unpack|too many values to unpack",
     "env.step returns 5 values: observation, reward, terminated, truncated, info."),
    (r"referenced before assignment|is not defined",
     "A variable is used before any env.step set it: is the loop body ever run, and are the names you return "
     "the ones the loop assigns?"),
)


def _call(repeat_action, env, action, repeat, situation):
    def run():
        try:
            return repeat_action(env, action, repeat)
        except RuntimeError as error:
            if "after the episode ended" in str(error):
                fail(EXERCISE, f"{situation}: your function kept stepping after the episode ended. Stop the loop "
                               "(break) as soon as a step returns terminated or truncated.")
            raise

    result = call(EXERCISE, run, what=f"{situation}: your repeat_action(env, action, {repeat})", hints=HINTS)
    if not isinstance(result, tuple) or len(result) != 5:
        fail(EXERCISE, f"{situation}: return the 5-tuple (observation, total_reward, terminated, truncated, info) "
                       f"as env.step does; got {type(result).__name__}"
                       + (f" of length {len(result)}" if isinstance(result, tuple) else "") + ".")
    try:
        float(result[1])
    except (TypeError, ValueError):
        fail(EXERCISE, f"{situation}: the total reward (the second value returned) should be one number, the sum "
                       f"of the frames' rewards; got {type(result[1]).__name__} {result[1]!r:.80}.")
    return result


def check_repeat_action(repeat_action) -> None:
    action = np.array([0.25], np.float32)

    # 1. A plain repeat: frames 1 and 2 give rewards 1 and 2, so the sum is 3.
    env = ScriptedEnv()
    env.reset()
    observation, total, terminated, truncated, _ = _call(repeat_action, env, action, 2, "repeat=2 in mid-episode")
    if env.frames != 2:
        fail(EXERCISE, f"with repeat=2 your function stepped the env {env.frames} time(s); it must step exactly "
                       "`repeat` times while the episode goes on (for _ in range(repeat)).")
    if any(not np.array_equal(a, action) for a in env.actions):
        fail(EXERCISE, "pass the same action to every env.step call, unchanged (scaling happens elsewhere).")
    rewards = {2.0: "only the last frame's reward", 1.0: "only the first frame's reward",
               1.5: "the mean of the rewards"}
    if float(total) != 3.0:
        why = rewards.get(float(total), f"{float(total)}")
        fail(EXERCISE, f"the two frames gave rewards 1 and 2, so the agent step's reward is their sum, 3; yours "
                       f"returned {why}. Add up every frame's reward (total += reward).")
    if float(np.asarray(observation).ravel()[0]) != 2.0:
        fail(EXERCISE, "return the observation of the LAST frame stepped (the agent sees where the repeated "
                       "action left the env), not the first one.")
    if terminated or truncated:
        fail(EXERCISE, "terminated/truncated must be those of the last frame stepped; the episode was not over.")

    # 2. The episode ends inside the repeat: stop there, report it, sum only the frames played.
    for how in ("terminated", "truncated"):
        env = ScriptedEnv(end=5, how=how)
        env.reset()
        _call(repeat_action, env, action, 3, "stepping to frame 3")
        observation, total, terminated, truncated, _ = _call(
            repeat_action, env, action, 3, f"an episode that ends ({how}) at frame 5, inside a repeat of 3")
        if env.frames != 5:
            fail(EXERCISE, f"the episode ended ({how}) at frame 5, but your function stopped at frame {env.frames}.")
        if float(total) != 9.0:
            fail(EXERCISE, f"when the episode ends ({how}) at frame 5 inside a repeat over frames 4-6, the reward is "
                           f"4 + 5 = 9; yours returned {float(total)}.")
        flag = terminated if how == "terminated" else truncated
        if not flag:
            fail(EXERCISE, f"the episode ended with {how}=True at frame 5; return that flag so the caller knows "
                           "the episode is over.")

    # 3. repeat=1 is a plain step.
    env = ScriptedEnv()
    env.reset()
    observation, total, *_ = _call(repeat_action, env, action, 1, "repeat=1")
    if env.frames != 1 or float(total) != 1.0:
        fail(EXERCISE, f"with repeat=1 your function should be one env.step; it stepped {env.frames} frame(s) and "
                       f"returned reward {float(total)}.")
    passed(EXERCISE, "repeat_action sums the rewards of `repeat` frames, returns the last frame, and stops "
                     "where an episode ends.")
