"""The lesson-1 checks accept the library's encoder and decoder and name the usual mistakes."""
from __future__ import annotations

import pytest
import torch

from dreamer_lib import networks
from dreamer_lib.course.checks import CheckFailed
from dreamer_lib.course.checks.networks import check_conv_decoder, check_conv_encoder


def test_reference_encoder_and_decoder_pass(capsys):
    check_conv_encoder(networks.ConvEncoder)
    check_conv_decoder(networks.ConvDecoder)
    assert "1.1 passed" in capsys.readouterr().out


class EncoderKeepsFlatBatch(networks.ConvEncoder):
    def forward(self, images):
        return self.convs(images.reshape(-1, *images.shape[-3:])).reshape(-1, self.embed_size)


class EncoderNoFlatten(networks.ConvEncoder):
    def forward(self, images):
        return self.convs(images).flatten(-3)


class EncoderChannelsLast(networks.ConvEncoder):
    def forward(self, images):
        batch_shape = images.shape[:-3]
        x = self.convs(images.reshape(-1, *images.shape[-3:]))
        return x.permute(0, 2, 3, 1).reshape(*batch_shape, self.embed_size)


@pytest.mark.parametrize("cls,message", [
    (EncoderKeepsFlatBatch, r"shape \(6, 1024\); expected \(2, 3, 1024\).*restore them"),
    (EncoderNoFlatten, r"raised RuntimeError.*flatten the leading dims first"),
    (EncoderChannelsLast, r"\(H, W, C\) order"),
])
def test_encoder_mistakes_are_named(cls, message):
    with pytest.raises(CheckFailed, match=message):
        check_conv_encoder(cls)


class DecoderNoBias(networks.ConvDecoder):
    def forward(self, features):
        batch_shape = features.shape[:-1]
        x = self.deconv1(self.dense(features.reshape(-1, features.shape[-1])))
        x = torch.relu(x.reshape(-1, 4 * self.depth, 5, 5))
        return self.deconvs(x).reshape(*batch_shape, 3, 64, 64)


class DecoderNoRelu(networks.ConvDecoder):
    def forward(self, features):
        batch_shape = features.shape[:-1]
        x = self.deconv1(self.dense(features.reshape(-1, features.shape[-1])))
        x = x.reshape(-1, 4 * self.depth, 5, 5) + self.deconv1_bias
        return self.deconvs(x).reshape(*batch_shape, 3, 64, 64)


class DecoderChannelsLastReshape(networks.ConvDecoder):
    def forward(self, features):
        batch_shape = features.shape[:-1]
        x = self.deconv1(self.dense(features.reshape(-1, features.shape[-1])))
        x = torch.relu(x.reshape(-1, 5, 5, 4 * self.depth).permute(0, 3, 1, 2) + self.deconv1_bias)
        return self.deconvs(x).reshape(*batch_shape, 3, 64, 64)


class DecoderFlatBatch(networks.ConvDecoder):
    def forward(self, features):
        x = self.deconv1(self.dense(features.reshape(-1, features.shape[-1])))
        x = torch.relu(x.reshape(-1, 4 * self.depth, 5, 5) + self.deconv1_bias)
        return self.deconvs(x)


@pytest.mark.parametrize("cls,message", [
    (DecoderNoBias, r"without self\.deconv1_bias"),
    (DecoderNoRelu, r"without the ReLU after the first"),
    (DecoderChannelsLastReshape, r"\(N, 5, 5, channels\)"),
    (DecoderFlatBatch, r"shape \(6, 3, 64, 64\); expected \(2, 3, 3, 64, 64\)"),
])
def test_decoder_mistakes_are_named(cls, message):
    with pytest.raises(CheckFailed, match=message):
        check_conv_decoder(cls)


def test_exercise_stubs_are_not_swallowed():
    class Stub(networks.ConvEncoder):
        def forward(self, images):
            raise NotImplementedError("Exercise 1.1: ...")

    with pytest.raises(NotImplementedError, match="Exercise 1.1"):
        check_conv_encoder(Stub)
