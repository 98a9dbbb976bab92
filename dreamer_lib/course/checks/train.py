"""Checks for lesson 6: the training schedule (exercise 6.1).

The learner's `updates_due(env_frames, config)` is asked, for two schedules, how many updates
are owed by a list of env-frame counts around the prefill and the training boundaries; each
usual mistake (no pretraining burst, counting from frame 0, agent steps for env frames, a float)
gives a distinct list of answers, so the check can name it.
"""
from __future__ import annotations

from dreamer_lib import config as reference
from dreamer_lib.config import make_config
from dreamer_lib.course.checks import call, fail, passed

EXERCISE = "6.1"


def _mistakes(prefill: int, every: int, steps: int, repeat: int, frames: list[int]) -> dict[str, list[int]]:
    """The answers of each named mistake, written out from the rule with one part changed."""
    def due(f, pretrain=True, start=prefill, counted=lambda f: f, first=lambda f: f >= prefill):
        if not first(f):
            return 0
        return steps * (int(pretrain) + (counted(f) - start) // every)

    mistakes = {
        "no updates right after the prefill: the official code (and the Trainer) does train_updates updates as "
        "soon as the prefill is done (its pretraining), then train_updates more every train_every frames: "
        "train_updates * (1 + (env_frames - prefill_frames) // train_every)": [due(f, pretrain=False) for f in frames],
        "counting the training intervals from frame 0 instead of from the end of the prefill: "
        "use (env_frames - prefill_frames) // train_every": [due(f, start=0) for f in frames],
        "agent steps in place of env frames: the schedule is in env frames (the argument already is), "
        "do not divide by action_repeat": [due(f, counted=lambda f: f // repeat, start=prefill // repeat)
                                           for f in frames],
        "updates start one frame late: the prefill ends AT prefill_frames (env_frames >= prefill_frames)":
            [due(f, first=lambda f: f > prefill) for f in frames],
        "updates during the prefill: return 0 while env_frames < prefill_frames (the buffer holds only "
        "random episodes then, and too few)": [steps * (1 + f // every) for f in frames],
    }
    return mistakes


def check_updates_due(updates_due) -> None:
    for prefill, every, steps, repeat in ((5000, 1000, 100, 2), (2500, 400, 7, 4)):
        config = make_config("paper", prefill_frames=prefill, train_every=every, train_updates=steps,
                             action_repeat=repeat)
        frames = [0, prefill - 1, prefill, prefill + 1, prefill + every - 1, prefill + every, prefill + 3 * every + 5,
                  200_000]
        answers = [call(EXERCISE, updates_due, f, config,
                        what=f"calling your updates_due({f}, config) (prefill_frames {prefill}, train_every {every}, "
                             f"train_updates {steps})") for f in frames]
        if any(not isinstance(a, int) or isinstance(a, bool) for a in answers):
            kinds = sorted({type(a).__name__ for a in answers})
            fail(EXERCISE, f"updates_due returned {', '.join(kinds)}; it should return an int, a count of updates. "
                           "Use // (floor division) rather than /.")
        expected = [reference.updates_due(f, config) for f in frames]
        mistakes = _mistakes(prefill, every, steps, repeat, frames)
        if answers != expected:
            for why, wrong in mistakes.items():
                if answers == wrong:
                    fail(EXERCISE, f"looks like {why}.")
            table = ", ".join(f"{f}: {a} (expected {e})" for f, a, e in zip(frames, answers, expected) if a != e)
            fail(EXERCISE, f"with prefill_frames {prefill}, train_every {every}, train_updates {steps}, the updates owed "
                           f"by these env frames differ: {table}.")
    passed(EXERCISE, "updates_due gives the official schedule: train_updates updates when the prefill ends, then "
                     "train_updates more every train_every env frames.")
