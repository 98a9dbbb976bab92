"""The helpers every check shares: `call` turns an exception raised by the learner's code into a
CheckFailed that names the exercise, the learner's line and the likely cause; `gradient_paths`
names where a learner's gradient stops when the values are right.

Each check's own mistakes (one buggy learner function per classic mistake, and the message that
must name it) are tested in the per-lesson files, tests/test_checks_<lesson>.py, with the
`rejects` fixture of conftest.py.
"""
from __future__ import annotations

import pytest
import torch

from dreamer_lib.course.checks import CheckFailed, call, gradient_paths


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


def _paths(learner):
    """gradient_paths on y = a * b + sin(c), the reference, against `learner` on the same leaves."""
    a, b, c = (torch.linspace(0.5, 2.0, 4).requires_grad_(True) for _ in range(3))
    gradient_paths("9.9", {"y": (learner(a, b, c), a * b + torch.sin(c))}, {"a": a, "b": b, "c": c},
                   stops={("y", "b"): "b is cut: named by the check"}, partial={("y", "c"): "c is only partly there"})


def test_gradient_paths_accept_the_same_computation_written_otherwise():
    _paths(lambda a, b, c: b * a + torch.sin(c))


@pytest.mark.parametrize("learner, phrases", [
    (lambda a, b, c: a.detach() * b + torch.sin(c), ["no gradient flows from y back to a", "detached"]),
    (lambda a, b, c: a * b.detach() + torch.sin(c), ["b is cut: named by the check"]),
    (lambda a, b, c: (a * b + torch.sin(c)).detach(), ["no gradient flows from y back to a or b or c"]),
    (lambda a, b, c: a * b + torch.sin(c.detach()) + 0 * c, ["no gradient flows from y back to c"]),
    (lambda a, b, c: a * b + 0.5 * torch.sin(c) + 0.5 * torch.sin(c.detach()), ["c is only partly there"]),
    (lambda a, b, c: a * (b + a - a.detach()) + torch.sin(c), ["the gradient of y w.r.t. a", "differs",
                                                                "though the values are right"]),
])
def test_gradient_paths_name_where_the_gradient_stops(learner, phrases):
    with pytest.raises(CheckFailed) as failure:
        _paths(learner)
    for phrase in phrases:
        assert phrase in str(failure.value), str(failure.value)


def test_gradient_paths_name_a_gradient_the_reference_does_not_have():
    a, b = (torch.ones(3).requires_grad_(True) for _ in range(2))
    with pytest.raises(CheckFailed, match="a gradient flows from y back to b, where the reference has none"):
        gradient_paths("9.9", {"y": (a + b - b.detach(), a.clone())}, {"a": a, "b": b})
