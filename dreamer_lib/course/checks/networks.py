"""Checks for lesson 1: the convolutional encoder (exercise 1.1) and decoder (exercise 1.2).

Each check builds the learner's class and the library's, gives both the same random parameters
(biases included, which the library initialises at zero and would otherwise hide a missing bias),
runs them on seeded inputs with leading (T, B) and (B,) dimensions, and compares. When the
outputs differ, it tries the usual mistakes on the reference's layers and names the one that
reproduces the learner's output; failing that, it tests properties the mistake breaks (an encoder
without activations is affine and its embedding can be negative; a decoder with a sigmoid only
outputs values in (0, 1)).
"""
from __future__ import annotations

import torch

from dreamer_lib import networks
from dreamer_lib.course.checks import call, expect_close, fail, passed, same, seeded


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    generator = seeded(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            fan_in = parameter[0].numel() if parameter.dim() > 1 else 16
            parameter.copy_(torch.randn(parameter.shape, generator=generator) / fan_in ** 0.5)


def _build(cls, reference: torch.nn.Module, exercise: str, *args, **kwargs) -> torch.nn.Module:
    learner = call(exercise, cls, *args, what=f"building {getattr(cls, '__name__', cls)}{args}", **kwargs)
    try:
        learner.load_state_dict(reference.state_dict())
    except RuntimeError as error:
        fail(exercise, f"{cls.__name__}'s parameters are not the reference's (keep __init__ as given): {error}")
    return learner


def _run(learner, inputs, exercise: str, what: str, hint: str):
    with torch.no_grad():
        return call(exercise, learner, inputs, what=f"calling your {what} on an input of shape {tuple(inputs.shape)}",
                    hints=((r"shape|size|[Ee]xpected|dimension|mat1", hint),))


def _diagnose(exercise: str, name: str, actual, expected, mistakes: dict, hint: str, properties=None) -> None:
    """Compare; on a mismatch, name the listed mistake whose output equals the learner's, else
    let `properties()` name a mistake by what it breaks, else report the largest error."""
    if tuple(actual.shape) == tuple(expected.shape) and not same(actual, expected):
        for mistake, output in mistakes.items():
            if same(actual, output):
                fail(exercise, f"{name} matches what you get {mistake}; the reference does not do that. {hint}")
        if properties is not None:
            properties()
    expect_close(exercise, name, actual, expected, hint=hint)


def _activations(exercise: str, learner, actual, shape) -> None:
    """Name missing ReLUs by what they leave behind, whatever else differs: a conv stack without
    activations is affine (the embedding of the average of two images is the average of their
    embeddings), and without the last ReLU the embedding has negative entries."""
    generator = seeded(11)
    a, b = (torch.rand(shape, generator=generator) - 0.5 for _ in range(2))
    with torch.no_grad():
        fa, fb, fmid = (call(exercise, learner, x, what="calling your encoder") for x in (a, b, (a + b) / 2))
    if all(isinstance(f, torch.Tensor) and f.shape == actual.shape for f in (fa, fb, fmid)):
        scale = float((fa - fb).abs().max()) + 1e-12
        if float((fmid - (fa + fb) / 2).abs().max()) < 1e-4 * scale:
            fail(exercise, "your encoder is linear (affine): the embedding of the average of two images is the average "
                           "of their embeddings. The ReLUs are missing: a stack of convolutions without activations "
                           "is one big linear map, however deep. Run self.convs as given, Conv2d AND ReLU layers.")
    if float(actual.min()) < 0:
        fail(exercise, f"your embedding has negative entries (min {float(actual.min()):.3g}), but every conv of the "
                       "encoder, the last one included, is followed by a ReLU, so the embedding is >= 0: a ReLU is "
                       "missing. Run self.convs as given, Conv2d AND ReLU layers.")


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
        flat = images.reshape(-1, 3, 64, 64)
        with torch.no_grad():
            convs = reference.convs(flat)
            mistakes = {"when flattening the feature maps in (H, W, C) order instead of PyTorch's (C, H, W)":
                        convs.permute(0, 2, 3, 1).reshape(*batch, 1024)}
            for name, skipped in [("with no ReLU at all (only the Conv2d layers of self.convs): without activations "
                                   "the encoder is linear, one linear map however many convs it stacks", {1, 3, 5, 7}),
                                  ("without the last ReLU (the embedding is the ReLU of the last conv)", {7}),
                                  ("without the ReLU after the first conv", {1}),
                                  ("without the ReLU after the second conv", {3}),
                                  ("without the ReLU after the third conv", {5})]:
                x = flat
                for index, layer in enumerate(reference.convs):
                    x = x if index in skipped else layer(x)
                mistakes[name] = x.reshape(*batch, 1024)
            mistakes["when normalising the images again (x / 255 - 0.5) inside forward: they arrive already in "
                     "[-0.5, 0.5] (preprocess runs before the encoder)"] = reference(images / 255 - 0.5)
        _diagnose(exercise, f"your embedding of images {shape}", actual, expected, mistakes,
                  "Use self.convs as given (its ReLUs included) and flatten with x.reshape(*batch_shape, -1).",
                  properties=lambda: _activations(exercise, learner, actual, shape))
    passed(exercise, "ConvEncoder maps (..., 3, 64, 64) to (..., 1024) exactly as the reference.")


def _bounded(exercise: str, actual, expected) -> None:
    """A squashed output names its squashing, whatever else differs."""
    low, high = float(actual.min()), float(actual.max())
    if -0.5 < low and high < 0.5 and float(expected.abs().max()) > 0.5:
        fail(exercise, f"every value of your decoder's output lies in (-0.5, 0.5) (min {low:.3g}, max {high:.3g}), as "
                       "after sigmoid(x) - 0.5 or 0.5 * tanh(x); the reference's reaches "
                       f"{float(expected.abs().max()):.3g}. The decoder outputs the unbounded MEAN of a Gaussian over "
                       "the pixels in preprocess's [-0.5, 0.5] space: no activation after the last transposed conv.")
    if low > 0 and high < 1:
        fail(exercise, f"every value of your decoder's output lies in (0, 1) (min {low:.3g}, max {high:.3g}), as after "
                       "a sigmoid. The decoder outputs the mean of a Gaussian over the pixels in preprocess's "
                       "[-0.5, 0.5] space, unbounded: no sigmoid (or any activation) after the last transposed conv.")
    if low >= 0:
        fail(exercise, f"your decoder's output is never negative (min {low:.3g}), as after a ReLU at the end; the "
                       "pixels live in [-0.5, 0.5] and the output is their unbounded mean: no activation after the "
                       "last transposed conv.")


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
                "with a ReLU after the last transposed conv (the output is an unbounded mean: no activation at the "
                "end)":
                    last(torch.relu(r.deconvs(torch.relu(grid + r.deconv1_bias)))),
                "with a sigmoid after the last transposed conv: the decoder outputs the MEAN of a Gaussian over pixels "
                "in [-0.5, 0.5] space (preprocess), unbounded; no activation at the end":
                    last(torch.sigmoid(r.deconvs(torch.relu(grid + r.deconv1_bias)))),
                "with a tanh after the last transposed conv: the decoder outputs the MEAN of a Gaussian over pixels, "
                "unbounded; no activation at the end":
                    last(torch.tanh(r.deconvs(torch.relu(grid + r.deconv1_bias)))),
                "with sigmoid(x) - 0.5 after the last transposed conv: the shift matches preprocess's [-0.5, 0.5] "
                "range, but the output is the unbounded MEAN of a Gaussian over those pixels (a bounded mean "
                "flattens the gradient near the ends); no activation at the end":
                    last(torch.sigmoid(r.deconvs(torch.relu(grid + r.deconv1_bias))) - 0.5),
                "with 0.5 * tanh(x) after the last transposed conv: the scale matches preprocess's [-0.5, 0.5] range, "
                "but the output is the unbounded MEAN of a Gaussian over those pixels; no activation at the end":
                    last(0.5 * torch.tanh(r.deconvs(torch.relu(grid + r.deconv1_bias)))),
                "when reshaping deconv1's output as (N, 5, 5, channels) instead of (N, channels, 5, 5)":
                    last(r.deconvs(torch.relu(x.reshape(-1, 5, 5, 4 * depth).permute(0, 3, 1, 2) + r.deconv1_bias))),
                "with a ReLU after self.dense": last(r.deconvs(torch.relu(
                    r.deconv1(torch.relu(r.dense(features.reshape(-1, feature_size)))).reshape(-1, 4 * depth, 5, 5)
                    + r.deconv1_bias))),
            }
        _diagnose(exercise, f"your decoder's output for features {shape}", actual, expected, mistakes, hint,
                  properties=lambda: _bounded(exercise, actual, expected))
    passed(exercise, "ConvDecoder maps (..., features) to (..., 3, 64, 64) exactly as the reference.")
