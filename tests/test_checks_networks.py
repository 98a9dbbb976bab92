"""The lesson-1 checks accept the library's encoder and decoder and name the usual mistakes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dreamer_lib import networks
from dreamer_lib.course.checks.networks import check_conv_decoder, check_conv_encoder


def test_reference_encoder_and_decoder_pass(capsys):
    check_conv_encoder(networks.ConvEncoder)
    check_conv_decoder(networks.ConvDecoder)
    out = capsys.readouterr().out
    assert "Exercise 1.1 passed" in out and "Exercise 1.2 passed" in out


# ---------------------------------------------------------------- 1.1 encoder


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


def _encode(module, images, skip=(), after=lambda x: x):
    batch_shape = images.shape[:-3]
    x = images.reshape(-1, *images.shape[-3:])
    for index, layer in enumerate(module.convs):
        if index not in skip and not (isinstance(layer, nn.ReLU) and "all" in skip):
            x = layer(x)
    return after(x).reshape(*batch_shape, module.embed_size)


class EncoderNoReLU(networks.ConvEncoder):  # only the Conv2d layers of self.convs
    def forward(self, images):
        return _encode(self, images, skip=("all",))


class EncoderNoReLUChannelsLast(networks.ConvEncoder):  # two mistakes: the linearity still shows
    def forward(self, images):
        return _encode(self, images, skip=("all",), after=lambda x: x.permute(0, 2, 3, 1))


class EncoderNoLastReLU(networks.ConvEncoder):
    def forward(self, images):
        return _encode(self, images, skip=(7,))


class EncoderNoLastReLUChannelsLast(networks.ConvEncoder):  # two mistakes: the negatives still show
    def forward(self, images):
        return _encode(self, images, skip=(7,), after=lambda x: x.permute(0, 2, 3, 1))


class EncoderNormalisesAgain(networks.ConvEncoder):
    def forward(self, images):
        return super().forward(images / 255 - 0.5)


class EncoderNoReturn(networks.ConvEncoder):
    def forward(self, images):
        self.convs(images.reshape(-1, *images.shape[-3:]))


ENCODER_MISTAKES = {  # the mistake -> what the check's message must say
    EncoderKeepsFlatBatch: ["shape (6, 1024); expected (2, 3, 1024)", "restore them"],
    EncoderNoFlatten: ["raised RuntimeError", "flatten the leading dims first"],
    EncoderChannelsLast: ["(H, W, C) order"],
    EncoderNoReLU: ["no ReLU at all", "linear"],
    EncoderNoReLUChannelsLast: ["your encoder is linear (affine)", "ReLUs are missing"],
    EncoderNoLastReLU: ["without the last ReLU"],
    EncoderNoLastReLUChannelsLast: ["negative entries", "a ReLU is missing"],
    EncoderNormalisesAgain: ["normalising the images again"],
    EncoderNoReturn: ["should return a tensor; got NoneType"],
}


@pytest.mark.parametrize("wrong", ENCODER_MISTAKES)
def test_encoder_mistakes_are_named(wrong, rejects):
    rejects(check_conv_encoder, wrong, "Exercise 1.1", *ENCODER_MISTAKES[wrong])


# ---------------------------------------------------------------- 1.2 decoder
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


def _decode(module, features, dense=lambda x: x, last=lambda x: x, bias=True):
    batch_shape = features.shape[:-1]
    x = module.deconv1(dense(module.dense(features.reshape(-1, features.shape[-1]))))
    x = torch.relu(x.reshape(-1, 4 * module.depth, 5, 5) + (module.deconv1_bias if bias else 0))
    return last(module.deconvs(x)).reshape(*batch_shape, 3, 64, 64)


class DecoderSigmoid(networks.ConvDecoder):  # "pixels are in [0, 1]"
    def forward(self, features):
        return _decode(self, features, last=torch.sigmoid)


class DecoderSigmoidNoBias(networks.ConvDecoder):  # two mistakes: the (0, 1) range still shows
    def forward(self, features):
        return _decode(self, features, last=torch.sigmoid, bias=False)


class DecoderShiftedSigmoid(networks.ConvDecoder):  # "the pixels are in [-0.5, 0.5], so is the output"
    def forward(self, features):
        return _decode(self, features, last=lambda x: torch.sigmoid(x) - 0.5)


class DecoderShiftedSigmoidNoBias(networks.ConvDecoder):  # two mistakes: the (-0.5, 0.5) range still shows
    def forward(self, features):
        return _decode(self, features, last=lambda x: torch.sigmoid(x) - 0.5, bias=False)


class DecoderHalfTanh(networks.ConvDecoder):
    def forward(self, features):
        return _decode(self, features, last=lambda x: 0.5 * torch.tanh(x))


class DecoderFinalReLU(networks.ConvDecoder):
    def forward(self, features):
        return _decode(self, features, last=torch.relu)


class DecoderReLUAfterDense(networks.ConvDecoder):  # the lesson: "self.dense has no activation after it"
    def forward(self, features):
        return _decode(self, features, dense=torch.relu)


DECODER_MISTAKES = {  # the mistake -> what the check's message must say
    DecoderNoBias: ["without self.deconv1_bias"],
    DecoderNoRelu: ["without the ReLU after the first"],
    DecoderChannelsLastReshape: ["(N, 5, 5, channels)"],
    DecoderFlatBatch: ["shape (6, 3, 64, 64); expected (2, 3, 3, 64, 64)"],
    DecoderSigmoid: ["with a sigmoid after the last transposed conv", "unbounded"],
    DecoderSigmoidNoBias: ["lies in (0, 1)", "as after a sigmoid", "unbounded"],
    DecoderShiftedSigmoid: ["with sigmoid(x) - 0.5 after the last transposed conv", "unbounded MEAN"],
    DecoderShiftedSigmoidNoBias: ["lies in (-0.5, 0.5)", "as after sigmoid(x) - 0.5", "unbounded MEAN"],
    DecoderHalfTanh: ["with 0.5 * tanh(x) after the last transposed conv"],
    DecoderFinalReLU: ["with a ReLU after the last transposed conv"],
    DecoderReLUAfterDense: ["with a ReLU after self.dense"],
}


@pytest.mark.parametrize("wrong", DECODER_MISTAKES)
def test_decoder_mistakes_are_named(wrong, rejects):
    rejects(check_conv_decoder, wrong, "Exercise 1.2", *DECODER_MISTAKES[wrong])


def test_exercise_stubs_are_not_swallowed():
    class Stub(networks.ConvEncoder):
        def forward(self, images):
            raise NotImplementedError("Exercise 1.1: ...")

    with pytest.raises(NotImplementedError, match="Exercise 1.1"):
        check_conv_encoder(Stub)
