"""Encoder, decoder and the small dense heads of the world model (paper appendix A).

Images enter as float tensors (..., 3, 64, 64) in [-0.5, 0.5] (`preprocess` turns stored uint8
frames into that); any number of leading batch/time dimensions is allowed.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., 64, 64, 3) -> float (..., 3, 64, 64) in [-0.5, 0.5], as the official code."""
    if images.dtype != torch.uint8 or images.dim() < 3 or images.shape[-3:] != (64, 64, 3):
        raise ValueError(f"Expected uint8 frames of shape (..., 64, 64, 3), as make_env and the replay buffer "
                         f"give them; got {images.dtype} {tuple(images.shape)}. Channels go last, and "
                         "frames stay uint8 until preprocess normalises them.")
    return images.permute(*range(images.dim() - 3), -1, -3, -2).float() / 255.0 - 0.5


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Inverse of `preprocess` for display: float (..., 3, H, W) -> uint8 (..., H, W, 3)."""
    images = ((images.detach().float() + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    return images.permute(*range(images.dim() - 3), -2, -1, -3)


def keras_init(module: nn.Module) -> nn.Module:
    """Initialise as the official code did, through Keras' defaults: glorot-uniform weights, zero
    biases, and an orthogonal recurrent matrix for the GRU. PyTorch's defaults differ, and with
    them the conv autoencoder of lesson 1 sits at the "average frame" for over a thousand steps.
    Glorot's bound is sqrt(6 / (fan_in + fan_out)); for the decoder's first layer (a 5x5
    transposed conv written as a Linear) the fans are those of that conv, 25 x (in, out) channels."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.GRUCell):
            nn.init.xavier_uniform_(m.weight_ih)
            nn.init.orthogonal_(m.weight_hh)
            nn.init.zeros_(m.bias_ih)
            nn.init.zeros_(m.bias_hh)
    for m in module.modules():  # after the loop above, which treated deconv1 as a plain Linear
        if hasattr(m, "deconv1_bias"):  # a ConvDecoder (also a learner's copy from lesson 1)
            out_channels, in_channels = m.deconv1_bias.shape[0], m.deconv1.in_features
            bound = (6 / (25 * (in_channels + out_channels))) ** 0.5
            nn.init.uniform_(m.deconv1.weight, -bound, bound)
            nn.init.zeros_(m.deconv1_bias)
    return module


class ConvEncoder(nn.Module):
    """o_t -> embed_t. Four 4x4 stride-2 convs with ReLU: 64 -> 31 -> 14 -> 6 -> 2 pixels,
    channels depth x (1, 2, 4, 8), so 8 * depth * 2 * 2 = 1024 features at depth 32."""

    def __init__(self, depth: int = 32):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, depth, 4, stride=2), nn.ReLU(),
            nn.Conv2d(depth, 2 * depth, 4, stride=2), nn.ReLU(),
            nn.Conv2d(2 * depth, 4 * depth, 4, stride=2), nn.ReLU(),
            nn.Conv2d(4 * depth, 8 * depth, 4, stride=2), nn.ReLU(),
        )
        self.embed_size = 8 * depth * 2 * 2

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch_shape = images.shape[:-3]
        x = self.convs(images.reshape(-1, *images.shape[-3:]))
        return x.reshape(*batch_shape, self.embed_size)


class ConvDecoder(nn.Module):
    """(h_t, z_t) -> mean of a unit-variance Gaussian over the 64x64x3 pixels.

    Dense to 32 * depth, then transposed convs with kernels 5, 5, 6, 6 and stride 2:
    1 -> 5 -> 13 -> 30 -> 64 pixels, channels 4, 2, 1 x depth, then 3.
    The first transposed conv sees a 1x1 input, where it is exactly a linear map to a 5x5 grid
    with one bias per channel; we write it as that linear map (same function, same parameter
    count) because it is faster and torch.compile's backward of a 1x1 ConvTranspose2d fails.
    """

    def __init__(self, feature_size: int, depth: int = 32):
        super().__init__()
        self.depth = depth
        self.dense = nn.Linear(feature_size, 32 * depth)
        self.deconv1 = nn.Linear(32 * depth, 4 * depth * 5 * 5, bias=False)
        self.deconv1_bias = nn.Parameter(torch.zeros(4 * depth, 1, 1))
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(4 * depth, 2 * depth, 5, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(2 * depth, depth, 6, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(depth, 3, 6, stride=2),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch_shape = features.shape[:-1]
        x = self.deconv1(self.dense(features.reshape(-1, features.shape[-1])))
        x = torch.relu(x.reshape(-1, 4 * self.depth, 5, 5) + self.deconv1_bias)
        return self.deconvs(x).reshape(*batch_shape, 3, 64, 64)


def gaussian_log_prob(mean: torch.Tensor, target: torch.Tensor, event_dims: int = 0) -> torch.Tensor:
    """log N(target; mean, 1), summed over the last `event_dims` dimensions, in fp32.

    The paper models images and rewards as unit-variance Gaussians. Up to its constant this is
    -0.5 x squared error; we keep the constant so that losses read as the official code's (an
    image of 64x64x3 pixels carries 0.5 * log(2 pi) * 12288 = 11291 nats of it). The squared
    errors are summed before they are scaled: the same number in fewer passes over the pixels."""
    squared_error = (mean.float() - target.float()).square()
    if not event_dims:
        return -0.5 * squared_error - 0.5 * math.log(2 * math.pi)
    dims = tuple(range(-event_dims, 0))
    count = math.prod(squared_error.shape[d] for d in dims)  # 12288 for a 64x64x3 image
    return -0.5 * squared_error.sum(dims) - 0.5 * math.log(2 * math.pi) * count


class DenseHead(nn.Module):
    """A multilayer perceptron with ELU, used for reward, continue, value and action heads."""

    def __init__(self, in_size: int, out_size: int, layers: int, units: int):
        super().__init__()
        blocks, size = [], in_size
        for _ in range(layers):
            blocks += [nn.Linear(size, units), nn.ELU()]
            size = units
        blocks.append(nn.Linear(size, out_size))
        self.net = nn.Sequential(*blocks)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class RewardPredictor(DenseHead):
    """(h_t, z_t) -> mean of a unit-variance Gaussian over r_t. Two layers of 400, as the official
    code (the paper's appendix says three of 300; see docs/provenance.md)."""

    def __init__(self, feature_size: int, units: int = 400):
        super().__init__(feature_size, 1, layers=2, units=units)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features).squeeze(-1).float()


class ContinuePredictor(DenseHead):
    """(h_t, z_t) -> logit of a Bernoulli over "the episode continues" (pcont in the official code).
    Off by default, as in the paper's DMC experiments, where episodes only end by time limit."""

    def __init__(self, feature_size: int, units: int = 400):
        super().__init__(feature_size, 1, layers=3, units=units)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features).squeeze(-1).float()
