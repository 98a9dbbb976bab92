"""Exercise checks: compare a learner's implementation with a reference on seeded inputs (the
library's own function, or torch's where torch has one) and say precisely what is wrong (shape,
dtype, max error, a missing or unwanted gradient...). References written independently of the
library live only in tests/.

Each lesson's checks live in a module named after the concept (checks.envs, checks.networks,
checks.buffer, checks.rssm, checks.world_model, checks.actor_critic); this module holds what they
share. A check prints one line when it passes and raises CheckFailed with an explanation when it
does not.

Every call into the learner's code goes through `call`: an exception raised there (a wrong method,
a shape that does not fit, a detached tensor...) becomes a CheckFailed that names the exercise,
the exception, the learner's line that raised it and the likely cause, instead of a raw traceback
into library code. Only NotImplementedError passes through unchanged: it is an unfilled blank
("Exercise N.k: ..."), and its message already says which.
"""
from __future__ import annotations

import os
import re
import traceback

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


# Likely causes of exceptions from learner code, matched (re.search) against "Type: message".
# A check passes its own, more specific hints first; these are the fallbacks every check shares.
COMMON_HINTS: tuple[tuple[str, str], ...] = (
    (r"'TanhNormal' object has no attribute 'sample'",
     "The actor returns a TanhNormal, which has no .sample(): .sample() gives no gradient: use .rsample() "
     "(Dreamer trains the actor by backpropagating the return through its sampled actions)."),
    (r"mat1 and mat2 shapes cannot be multiplied|size of tensor a \(\d+\) must match|is invalid for input of size"
     r"|Expected \d+D .*input|expected input\[|Sizes of tensors must match|must match the size|shape mismatch"
     r"|doesn't match the broadcast shape",
     "A shape mismatch: print the shapes of the tensors on that line and compare them with the exercise's "
     "description (which dimension is time, batch, features?)."),
    (r"takes \d+ positional arguments? but \d+ (were|was) given|missing \d+ required positional argument"
     r"|got an unexpected keyword argument",
     "The check calls your function as the exercise's signature says: keep its parameters (names, order and "
     "defaults) as given."),
    (r"does not require grad and does not have a grad_fn|One of the differentiated Tensors",
     "A tensor lost its gradient path: something was detached, computed under torch.no_grad(), or turned "
     "into a Python number or numpy array."),
    (r"modified by an inplace operation",
     "An in-place operation (+=, x[i] = ..., relu_) overwrote a tensor that autograd still needs: compute "
     "out of place, e.g. collect the steps in a list and torch.stack them."),
    (r"Can't call numpy\(\) on Tensor that requires grad|cannot be converted to Scalar|only one element tensors"
     r"|can't convert .* to numpy",
     "Keep the computation in torch tensors: .numpy(), .item() and float() cut the gradient (and only work "
     "on single numbers or detached tensors)."),
    (r"'NoneType' object|NoneType",
     "Something is None where a value was expected: does every function (and method) you wrote end with "
     "`return`?"),
    (r"'tuple' object has no attribute|'list' object has no attribute",
     "A tuple or list is used where a tensor or state is expected: unpack the return value of the call that "
     "produced it."),
    (r"Expected all tensors to be on the same device",
     "Tensors on different devices: create new tensors with device=... of an input (or torch.zeros_like)."),
    (r"expected scalar type|dtype|must have the same dtype",
     "A dtype mismatch: convert with .float(), or create new tensors like an input (torch.zeros_like)."),
    (r"too many values to unpack|not enough values to unpack",
     "The number of values unpacked differs from the number returned: check what the function you call "
     "returns."),
)

# Frames in these places are not the learner's: the library (checks included), torch, numpy and
# other installed packages.
_NOT_LEARNER = (os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep,
                os.path.dirname(os.path.abspath(torch.__file__)) + os.sep)


def _learner_line(error: BaseException) -> str:
    """' (raised in f, line N: `code`)' for the innermost traceback frame in the learner's code."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        path = os.path.abspath(frame.filename)
        if (path.startswith(_NOT_LEARNER) or f"{os.sep}site-packages{os.sep}" in path
                or frame.filename.startswith("<frozen")):
            continue
        code = (frame.line or "").strip()
        return f" (raised in {frame.name}, line {frame.lineno}" + (f": `{code}`)" if code else ")")
    return ""


def explain_error(error: BaseException, hints=()) -> str:
    """'Type: message (where). Likely cause.' for an exception raised by learner code."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if len(message) > 300:
        message = message[:300] + "..."
    text = f"{type(error).__name__}: {message}"
    hint = next((h for pattern, h in (*hints, *COMMON_HINTS) if re.search(pattern, f"{type(error).__name__}: {error}")),
                "")
    return f"{text}{_learner_line(error)}." + (f" {hint}" if hint else "")


def call(exercise: str, function, *args, what: str = "", hints=(), **kwargs):
    """function(*args, **kwargs), where `function` is (or runs) the learner's code.

    Any exception but NotImplementedError (an unfilled blank) and CheckFailed becomes a CheckFailed
    naming the exercise, what was being done (`what`), the exception, the line it came from and
    the likely cause: the first of `hints` (pairs of a regular expression matched against
    "Type: message", and a hint), then of COMMON_HINTS, that matches."""
    try:
        return function(*args, **kwargs)
    except (NotImplementedError, CheckFailed):
        raise
    except Exception as error:
        name = what or f"calling your {getattr(function, '__qualname__', repr(function))}"
        failure = CheckFailed(f"Exercise {exercise}: {name} raised {explain_error(error, hints)}")
        failure.learner_error = error  # the original, with its traceback, for whoever wants to dig
    raise failure from None


def same(actual, expected, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """True when `actual` is a tensor of `expected`'s shape and values (for naming mistakes)."""
    return (isinstance(actual, torch.Tensor) and tuple(actual.shape) == tuple(expected.shape)
            and torch.allclose(actual.detach().float(), expected.detach().float(), atol=atol, rtol=rtol))


def _nonzero(grad) -> bool:
    return grad is not None and bool(grad.abs().max() > 0)


def gradient_paths(exercise: str, outputs: dict, inputs: dict, stops: dict | None = None, what: str = "",
                   partial: dict | None = None) -> None:
    """Compare the gradient of each output w.r.t. each input with the reference's, and name where
    the learner's gradient stops. A value check cannot see a .detach(): the numbers are the same,
    only the training signal is gone, and a Dreamer run with a cut path trains on silently.

    outputs: {name: (yours, reference)}, tensors already checked to have the same values;
    inputs: {name: leaf tensor that requires grad}, what both were computed from; stops:
    {(output name, input name): message} for a path the reference has and yours lacks (the
    others get a generic message); a key (output name, (input names...)) names a cut of all of
    those inputs at once, checked first. partial: {(output name, input name): message} for a path
    that carries a gradient, but not the reference's. Each output is projected on fixed random weights, so that a
    gradient that only sums to the right total does not pass."""
    weights = seeded(11)
    leaves = list(inputs.values())
    for out_name, (yours, ref) in outputs.items():
        w = torch.randn(ref.shape, generator=weights)
        ref_grads = torch.autograd.grad((ref.float() * w).sum(), leaves, allow_unused=True, retain_graph=True)
        your_grads = [None] * len(leaves)
        if isinstance(yours, torch.Tensor) and yours.requires_grad:
            your_grads = call(exercise, torch.autograd.grad, (yours.float() * w).sum(), leaves, allow_unused=True,
                              retain_graph=True, what=f"backpropagating from {out_name}{what}")
        cut = tuple(name for name, mine, theirs in zip(inputs, your_grads, ref_grads)
                    if _nonzero(theirs) and not _nonzero(mine))
        if cut:
            stops = stops or {}
            fail(exercise, stops.get((out_name, cut)) or stops.get((out_name, cut[0])) or
                 f"no gradient flows from {out_name} back to {' or '.join(cut)}{what}, though the values are right: "
                 "something on that path is detached, computed under torch.no_grad(), or turned into a number. The "
                 "reference keeps that path, and training needs it.")
        for in_name, mine, theirs in zip(inputs, your_grads, ref_grads):
            if _nonzero(mine) and not _nonzero(theirs):
                fail(exercise, f"a gradient flows from {out_name} back to {in_name}{what}, where the reference has "
                               "none: something that should be detached (.detach()) is not.")
            if _nonzero(theirs) and not torch.allclose(mine.float(), theirs.float(), atol=1e-5, rtol=1e-3):
                error = (mine.float() - theirs.float()).abs().max()
                fail(exercise, (partial or {}).get((out_name, in_name)) or
                     f"the gradient of {out_name} w.r.t. {in_name}{what} differs from the reference's (by up to "
                     f"{float(error):.3g}) though the values are right: part of that path is detached or passes "
                     "through a non-differentiable step (.data, a Python number, an in-place copy).")
