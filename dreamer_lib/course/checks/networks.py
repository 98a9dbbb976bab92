"""Checks for lesson 1: the convolutional encoder (exercise 1.1) and decoder (exercise 1.2).

Each check builds the learner's class and the library's, gives both the same random parameters
(biases included, which the library initialises at zero and would otherwise hide a missing bias),
runs them on seeded inputs with leading (T, B) and (B,) dimensions, and compares. When the
outputs differ, it tries the usual mistakes on the reference's layers and names the one that
reproduces the learner's output.
"""
from __future__ import annotations

import torch

from dreamer_lib import networks
from dreamer_lib.course.checks import expect_close, fail, passed, seeded


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    generator = seeded(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            fan_in = parameter[0].numel() if parameter.dim() > 1 else 16
            parameter.copy_(torch.randn(parameter.shape, generator=generator) / fan_in ** 0.5)


def _build(cls, reference: torch.nn.Module, exercise: str, *args, **kwargs) -> torch.nn.Module:
    try:
        learner = cls(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:
        fail(exercise, f"could not build {cls.__name__}{args}: {type(error).__name__}: {error}")
    try:
        learner.load_state_dict(reference.state_dict())
    except RuntimeError as error:
        fail(exercise, f"{cls.__name__}'s parameters are not the reference's (keep __init__ as given): {error}")
    return learner


def _run(learner, inputs, exercise: str, what: str, hint: str):
    try:
        with torch.no_grad():
            return learner(inputs)
    except NotImplementedError:
        raise
    except Exception as error:
        fail(exercise, f"calling your {what} on an input of shape {tuple(inputs.shape)} raised "
                       f"{type(error).__name__}: {error}. {hint}")


def _diagnose(exercise: str, name: str, actual, expected, mistakes: dict, hint: str) -> None:
    """Compare; on a mismatch, name the listed mistake whose output equals the learner's."""
    if tuple(actual.shape) == tuple(expected.shape) and not torch.allclose(actual, expected, atol=1e-5, rtol=1e-4):
        for mistake, output in mistakes.items():
            if output.shape == actual.shape and torch.allclose(actual, output, atol=1e-5, rtol=1e-4):
                fail(exercise, f"{name} matches what you get {mistake}; the reference does not do that. {hint}")
    expect_close(exercise, name, actual, expected, hint=hint)


def check_conv_encoder(cls) -> None:
    exercise = "1.1"
    depth = 32
    reference = networks.ConvEncoder(depth)
    _randomise(reference)
    learner = _build(cls, reference, exercise, depth)
    flatten_hint = ("nn.Conv2d only takes (N, C, H, W): flatten the leading dims first "
                    "(images.reshape(-1, *images.shape[-3:])), run self.convs, then restore them.")
    for shape in [(2, 3, 3, 64, 64), (5, 3, 64, 64)]:
        images = torch.rand(shape, generator=seeded(1)) - 0.5
        batch = shape[:-3]
        expected = reference(images)
        actual = _run(learner, images, exercise, "encoder", flatten_hint)
        if not isinstance(actual, torch.Tensor):
            fail(exercise, f"forward should return a tensor; got {type(actual).__name__}.")
        if tuple(actual.shape) != (*batch, 1024):
            if actual.numel() == expected.numel():
                fail(exercise, f"on images of shape {shape} the output has shape {tuple(actual.shape)}; expected "
                               f"{(*batch, 1024)} (the same numbers, arranged differently): you flattened the leading dims "
                               f"{batch} into one; did you restore them at the end "
                               "(x.reshape(*batch_shape, self.embed_size))?")
            fail(exercise, f"on images of shape {shape} the output has shape {tuple(actual.shape)}; expected "
                           f"{(*batch, 1024)}: one 1024-vector (8 * depth * 2 * 2) per image, keeping the leading "
                           f"dims {batch}. Did you flatten the batch dims and restore them?")
        convs = reference.convs(images.reshape(-1, 3, 64, 64))
        mistakes = {"when flattening the feature maps in (H, W, C) order instead of PyTorch's (C, H, W)":
                    convs.permute(0, 2, 3, 1).reshape(*batch, 1024)}
        _diagnose(exercise, f"your embedding of images {shape}", actual, expected, mistakes,
                  "Use self.convs as given (its ReLUs included) and flatten with x.reshape(*batch_shape, -1).")
    passed(exercise, "ConvEncoder maps (..., 3, 64, 64) to (..., 1024) exactly as the reference.")


def check_conv_decoder(cls) -> None:
    exercise = "1.2"
    depth, feature_size = 32, 230
    reference = networks.ConvDecoder(feature_size, depth)
    _randomise(reference)
    learner = _build(cls, reference, exercise, feature_size, depth)
    hint = ("Steps: self.dense, then self.deconv1 (a Linear), reshape to (N, 4 * depth, 5, 5), add "
            "self.deconv1_bias, ReLU, then self.deconvs.")
    for shape in [(2, 3, feature_size), (5, feature_size)]:
        features = torch.randn(shape, generator=seeded(2))
        batch = shape[:-1]
        expected = reference(features)
        actual = _run(learner, features, exercise, "decoder",
                      "nn.Linear accepts any leading dims but the transposed convs need (N, C, H, W): flatten "
                      "the leading dims to one, and reshape the 3200 outputs of deconv1 to (N, 4 * depth, 5, 5).")
        if not isinstance(actual, torch.Tensor):
            fail(exercise, f"forward should return a tensor; got {type(actual).__name__}.")
        if tuple(actual.shape) != (*batch, 3, 64, 64):
            fail(exercise, f"on features of shape {shape} the output has shape {tuple(actual.shape)}; expected "
                           f"{(*batch, 3, 64, 64)}: one (3, 64, 64) image mean per feature vector, keeping the "
                           f"leading dims {batch}. Did you flatten the batch dims and restore them?")
        r = reference
        with torch.no_grad():
            x = r.deconv1(r.dense(features.reshape(-1, feature_size)))
            grid = x.reshape(-1, 4 * depth, 5, 5)
            last = lambda y: y.reshape(*batch, 3, 64, 64)  # noqa: E731
            mistakes = {
                "without self.deconv1_bias": last(r.deconvs(torch.relu(grid))),
                "without the ReLU after the first (Linear) transposed conv": last(r.deconvs(grid + r.deconv1_bias)),
                "with a ReLU (or other squashing) after the last transposed conv":
                    last(torch.relu(r.deconvs(torch.relu(grid + r.deconv1_bias)))),
                "when reshaping deconv1's output as (N, 5, 5, channels) instead of (N, channels, 5, 5)":
                    last(r.deconvs(torch.relu(x.reshape(-1, 5, 5, 4 * depth).permute(0, 3, 1, 2) + r.deconv1_bias))),
                "with a ReLU after self.dense": last(r.deconvs(torch.relu(
                    r.deconv1(torch.relu(r.dense(features.reshape(-1, feature_size)))).reshape(-1, 4 * depth, 5, 5)
                    + r.deconv1_bias))),
            }
        _diagnose(exercise, f"your decoder's output for features {shape}", actual, expected, mistakes, hint)
    passed(exercise, "ConvDecoder maps (..., features) to (..., 3, 64, 64) exactly as the reference.")
