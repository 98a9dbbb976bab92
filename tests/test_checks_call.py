"""The helper every check shares: `call` turns an exception raised by the learner's code into a
CheckFailed that names the exercise, the learner's line and the likely cause.

Each check's own mistakes (one buggy learner function per classic mistake, and the message that
must name it) are tested in the per-lesson files, tests/test_checks_<lesson>.py, with the
`rejects` fixture of conftest.py.
"""
from __future__ import annotations

import pytest
import torch

from dreamer_lib.course.checks import CheckFailed, call


def test_call_turns_learner_exceptions_into_named_failures():
    def learner(x):
        return x.not_a_method()  # the learner's line

    with pytest.raises(CheckFailed) as failure:
        call("9.9", learner, torch.zeros(1), what="calling your learner")
    message = str(failure.value)
    assert message.startswith("Exercise 9.9: calling your learner raised AttributeError")
    assert "x.not_a_method()" in message  # the line of the learner's code that raised
    assert isinstance(failure.value.learner_error, AttributeError)


def test_call_lets_an_unfilled_blank_through():
    def blank():
        raise NotImplementedError("Exercise 9.9: write me")

    with pytest.raises(NotImplementedError, match="Exercise 9.9"):
        call("9.9", blank)


def test_call_puts_the_checks_own_hint_first():
    with pytest.raises(CheckFailed, match="my hint"):
        call("9.9", lambda: torch.zeros(2) + torch.zeros(3), hints=((r"size of tensor", "my hint"),))
