"""The math of the library checked against independent references: lambda-returns, loss
weights and gradients, KL and free nats, the tanh-Gaussian, conv arithmetic, image conversion."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from dreamer_lib.actor_critic import (Actor, TanhNormal, compute_actor_loss, compute_critic_loss,
                                      compute_lambda_returns, discount_weights)
from dreamer_lib.networks import ConvDecoder, ConvEncoder, preprocess, to_uint8
from dreamer_lib.rssm import RSSMState, kl_divergence, kl_loss


# ---------------------------------------------------------------------------- lambda-returns
def reference_lambda_returns(rewards, values, discounts, bootstrap, lam):
    """Plain Python: R_t = r_t + d_t ((1 - lam) v_{t+1} + lam R_{t+1}), v_H = R_H = bootstrap."""
    horizon, n = len(rewards), len(rewards[0])
    out = [[0.0] * n for _ in range(horizon)]
    for i in range(n):
        next_return = bootstrap[i]
        for t in reversed(range(horizon)):
            next_value = values[t + 1][i] if t + 1 < horizon else bootstrap[i]
            next_return = rewards[t][i] + discounts[t][i] * ((1 - lam) * next_value + lam * next_return)
            out[t][i] = next_return
    return out


def random_inputs(horizon=7, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(horizon, n, generator=g, dtype=torch.float64)
    values = torch.randn(horizon, n, generator=g, dtype=torch.float64) * 3
    discounts = torch.rand(horizon, n, generator=g, dtype=torch.float64)  # varied, so misaligned d_t shows
    bootstrap = torch.randn(n, generator=g, dtype=torch.float64) * 3
    return rewards, values, discounts, bootstrap


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.95, 1.0])  # 0: the one-step TD target; 1: the discounted sum
@pytest.mark.parametrize("seed", [0, 1])
def test_lambda_returns_match_reference_loop(lam, seed):
    # The reference itself, on two columns worked by hand, lambda 0.5. Column 0: r = [1, 2, 3, 4],
    # v = [10, 20, 30, 40], d = [0.9, 0.5, 1.0, 0.5], bootstrap 50:
    #   R_3 = 4 + 0.5 * (0.5 * 50 + 0.5 * 50)      = 29
    #   R_2 = 3 + 1.0 * (0.5 * 40 + 0.5 * 29)      = 37.5
    #   R_1 = 2 + 0.5 * (0.5 * 30 + 0.5 * 37.5)    = 18.875
    #   R_0 = 1 + 0.9 * (0.5 * 20 + 0.5 * 18.875)  = 18.49375
    # Column 1: r = 0, v = 7, d = 1, bootstrap 7: values consistent with no reward, every return 7.
    hand = reference_lambda_returns([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]],
                                    [[10.0, 7.0], [20.0, 7.0], [30.0, 7.0], [40.0, 7.0]],
                                    [[0.9, 1.0], [0.5, 1.0], [1.0, 1.0], [0.5, 1.0]], [50.0, 7.0], 0.5)
    assert sum(hand, []) == pytest.approx([18.49375, 7.0, 18.875, 7.0, 37.5, 7.0, 29.0, 7.0])
    r, v, d, b = random_inputs(seed=seed)
    got = compute_lambda_returns(r, v, d, b, lam)
    want = torch.tensor(reference_lambda_returns(r.tolist(), v.tolist(), d.tolist(), b.tolist(), lam),
                        dtype=torch.float64)
    assert got.shape == r.shape
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------- loss weights
def test_discount_weights_are_shifted_cumulative_product_without_grad():
    d = torch.tensor([[0.9, 0.5], [0.8, 1.0], [0.5, 0.0], [0.7, 0.3]], requires_grad=True)
    w = discount_weights(d)
    want = torch.tensor([[1.0, 1.0], [0.9, 0.5], [0.9 * 0.8, 0.5], [0.9 * 0.8 * 0.5, 0.0]])
    torch.testing.assert_close(w, want)
    assert not w.requires_grad and w.grad_fn is None


def test_actor_loss_gradient_flows_to_returns_weighted_by_discounts():
    g = torch.Generator().manual_seed(0)
    returns = torch.randn(5, 3, generator=g, requires_grad=True)
    discounts = (torch.rand(5, 3, generator=g) * 0.5 + 0.5).requires_grad_()
    loss = compute_actor_loss(returns, discounts)
    grad_returns, grad_discounts = torch.autograd.grad(loss, [returns, discounts], allow_unused=True)
    # loss = -mean(w * R): dloss/dR = -w / (H N); the weights are constants.
    torch.testing.assert_close(grad_returns, -discount_weights(discounts) / returns.numel())
    assert grad_discounts is None
    torch.testing.assert_close(loss, -(discount_weights(discounts) * returns).mean())


def test_critic_loss_is_half_weighted_mse_with_detached_target():
    g = torch.Generator().manual_seed(1)
    values = torch.randn(4, 6, generator=g, requires_grad=True)
    returns = torch.randn(4, 6, generator=g, requires_grad=True)
    discounts = torch.rand(4, 6, generator=g)
    loss = compute_critic_loss(values, returns, discounts)
    w = discount_weights(discounts)
    want = sum(0.5 * w[t, i] * (values[t, i] - returns[t, i]) ** 2 for t in range(4) for i in range(6)) / 24
    torch.testing.assert_close(loss, want)
    grad_values, grad_returns = torch.autograd.grad(loss, [values, returns], allow_unused=True)
    assert grad_returns is None  # the target does not move
    torch.testing.assert_close(grad_values, w * (values - returns).detach() / 24)


# ---------------------------------------------------------------------------- KL and free nats
def state(mean, std):
    return RSSMState(mean, std, torch.zeros_like(mean), torch.zeros(*mean.shape[:-1], 3))


def test_kl_divergence_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    shape = (4, 3, 5)
    qm, pm = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    qs, ps = torch.rand(shape, generator=g) + 0.1, torch.rand(shape, generator=g) * 2 + 0.1
    got = kl_divergence(state(qm, qs), state(pm, ps))
    want = torch.distributions.kl_divergence(Independent(Normal(qm, qs), 1), Independent(Normal(pm, ps), 1))
    assert got.shape == shape[:-1]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # direction matters: KL(q || p), not KL(p || q)
    assert not torch.allclose(got, kl_divergence(state(pm, ps), state(qm, qs)))


def kl_case(per_element_kl):
    """States whose KL(q || p) per batch element is exactly the given numbers: q = N(mu, 1),
    p = N(0, 1) in one dimension, KL = mu^2 / 2."""
    mu = torch.tensor([[math.sqrt(2 * k)] for k in per_element_kl], requires_grad=True)
    q = state(mu, torch.ones_like(mu))
    p = state(torch.zeros_like(mu), torch.ones_like(mu))
    return mu, q, p


def test_kl_loss_below_free_nats_is_constant_without_gradient():
    # Per element KL 0.5 and 4.5: mean 2.5 < 3. Clamping each element would give (3 + 4.5) / 2 = 3.75
    # and a gradient for the second element; clamping the mean gives exactly 3 and no gradient.
    mu, q, p = kl_case([0.5, 4.5])
    clamped, kl = kl_loss(q, p, free_nats=3.0)
    assert clamped.item() == pytest.approx(3.0)
    assert kl.item() == pytest.approx(2.5, rel=1e-6)
    (grad,) = torch.autograd.grad(clamped, mu, allow_unused=True)
    assert grad is None or torch.all(grad == 0)


def test_kl_loss_above_free_nats_is_the_mean_kl_with_gradient():
    # Per element KL 1 and 7: mean 4 > 3. Clamping each element would give (3 + 7) / 2 = 5 and no
    # gradient for the first element; clamping the mean gives 4 and gradients for both.
    mu, q, p = kl_case([1.0, 7.0])
    clamped, kl = kl_loss(q, p, free_nats=3.0)
    assert clamped.item() == pytest.approx(4.0, rel=1e-6)
    assert kl.item() == pytest.approx(4.0, rel=1e-6)
    (grad,) = torch.autograd.grad(clamped, mu)
    # d/dmu mean(mu^2 / 2) = mu / 2
    torch.testing.assert_close(grad, mu.detach() / 2)
    assert torch.all(grad != 0)


# ---------------------------------------------------------------------------- tanh-Gaussian
def test_tanh_normal_log_prob_matches_torch_transformed_distribution():
    g = torch.Generator().manual_seed(0)
    mean, std = torch.randn(8, 3, generator=g), torch.rand(8, 3, generator=g) + 0.2
    actions = torch.rand(8, 3, generator=g) * 1.9 - 0.95  # in [-0.95, 0.95]
    reference = TransformedDistribution(Normal(mean, std), [TanhTransform()])
    torch.testing.assert_close(TanhNormal(mean, std).log_prob(actions), reference.log_prob(actions).sum(-1),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mu,sigma", [(0.0, 1.0), (0.7, 0.3), (-1.5, 2.0)])
def test_tanh_normal_density_is_derivative_of_cdf(mu, sigma):
    # 1-D: P(A <= a) = Phi((atanh(a) - mu) / sigma); its derivative, by central differences in
    # float64, must be the density exp(log_prob). Also checked against the change of variables
    # written out: N(atanh a; mu, sigma) / (1 - a^2).
    def cdf(a):
        return 0.5 * (1 + math.erf((math.atanh(a) - mu) / (sigma * math.sqrt(2))))

    dist = TanhNormal(torch.tensor([mu]), torch.tensor([sigma]))
    h = 1e-6
    for a in (-0.9, -0.5, -0.1, 0.0, 0.3, 0.6, 0.9):
        numeric = (cdf(a + h) - cdf(a - h)) / (2 * h)
        x = math.atanh(a)
        by_hand = math.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi)) / (1 - a * a)
        got = math.exp(dist.log_prob(torch.tensor([a])).item())
        assert got == pytest.approx(numeric, rel=1e-3, abs=1e-6)  # abs: CDF differences cancel in the tails
        assert got == pytest.approx(by_hand, rel=1e-4)


def test_tanh_normal_log_prob_sums_over_action_dims():
    mean, std = torch.tensor([0.2, -0.4, 1.0]), torch.tensor([0.5, 1.0, 2.0])
    action = torch.tensor([0.1, -0.7, 0.8])
    joint = TanhNormal(mean, std).log_prob(action)
    parts = sum(TanhNormal(mean[i:i + 1], std[i:i + 1]).log_prob(action[i:i + 1]) for i in range(3))
    assert joint.shape == ()
    torch.testing.assert_close(joint, parts)


def test_tanh_normal_mode_is_a_likely_action_of_the_right_shape():
    torch.manual_seed(0)
    mean = torch.linspace(-1.5, 1.5, 40).reshape(20, 2)
    dist = TanhNormal(mean, torch.full_like(mean, 0.1))
    mode = dist.mode()
    assert mode.shape == (20, 2)
    assert torch.all(mode.abs() < 1)
    # a narrow Gaussian: the mode's pre-tanh value lies near the mean (the exact mode is at
    # x = mu + 2 sigma^2 tanh(x), within 0.02 of mu); a random draw would miss by 0.1 a third of the time
    assert torch.all((torch.atanh(mode) - mean).abs() < 0.1)
    samples = dist.rsample((200,))
    assert torch.all(dist.log_prob(mode) > dist.log_prob(samples).mean(0))


def test_tanh_normal_mode_of_wide_distribution_stays_in_action_range():
    torch.manual_seed(0)
    dist = TanhNormal(torch.zeros(7, 3), torch.full((7, 3), 5.0))
    mode = dist.mode()
    assert mode.shape == (7, 3)
    assert torch.all(mode.abs() <= 1) and torch.isfinite(dist.log_prob(mode)).all()
    assert torch.all(dist.log_prob(mode) > dist.log_prob(dist.rsample((200,))).mean(0))


@pytest.mark.parametrize("mu,sigma", [(0.0, 0.5), (1.5, 2.0), (-3.0, 0.3)])
def test_tanh_normal_entropy_matches_quadrature(mu, sigma):
    """H(tanh(x)) = H(N(mu, sigma)) + E[log(1 - tanh(x)^2)], the expectation by quadrature."""
    x = torch.linspace(mu - 10 * sigma, mu + 10 * sigma, 200_001, dtype=torch.float64)
    normal = torch.distributions.Normal(torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64))
    density = normal.log_prob(x).exp()
    log_det = -2 * (x.abs() + torch.log1p(torch.exp(-2 * x.abs())) - math.log(2))  # log sech^2 x = -2 log cosh x
    expected = normal.entropy() + torch.trapezoid(density * log_det, x)
    torch.manual_seed(0)
    estimate = TanhNormal(torch.tensor([mu]), torch.tensor([sigma])).entropy(samples=200_000)
    assert estimate.shape == ()
    assert estimate.item() == pytest.approx(expected.item(), abs=0.02)


def test_entropy_gradient_pulls_a_saturated_actor_back_where_the_return_gradient_vanishes():
    """The failure the cpu preset's entropy bonus fixes: a pre-tanh mean near +5 (action ~ +1)."""
    mean = torch.tensor([4.9], requires_grad=True)
    dist = TanhNormal(mean, torch.tensor([0.02]))
    torch.manual_seed(0)
    (action_grad,) = torch.autograd.grad(dist.rsample((100,)).mean(), mean)
    torch.manual_seed(0)
    (entropy_grad,) = torch.autograd.grad(dist.entropy(samples=100), mean)
    assert 0 < action_grad.item() < 1e-3  # d tanh(x)/dx = 1 - tanh(4.9)^2 ~ 2e-4: no signal
    # d/dx log(1 - tanh(x)^2) = -2 tanh(x): towards the centre, full size
    assert entropy_grad.item() == pytest.approx(-2 * math.tanh(4.9), rel=0.01)


@pytest.mark.parametrize("units", [16, 400])
def test_fresh_actor_has_wide_std_and_bounded_mean(units):
    torch.manual_seed(0)
    actor = Actor(feature_size=20, action_size=3, units=units, mean_scale=5.0, init_std=5.0)
    dist = actor(torch.randn(256, 20))
    scale = dist.normal.scale
    assert scale.shape == (256, 3)
    # the last layer's output is small at init, so std = softplus(small + softplus^-1(5)) ~ 5
    assert scale.mean().item() == pytest.approx(5.0, abs=0.5)
    assert torch.all((scale > 4) & (scale < 6))
    # mean = 5 tanh(m / 5) stays in [-5, 5] however large the raw output, and std >= min_std
    huge = actor(torch.randn(256, 20) * 1e4)
    assert torch.all(huge.normal.loc.abs() <= 5.0)
    assert torch.all(huge.normal.scale >= 1e-4)
    assert huge.normal.loc.abs().max() > 1.0  # the bound is doing something here


# ---------------------------------------------------------------------------- conv arithmetic
def record_spatial_sizes(module_list):
    """Forward hooks that record each module's output width."""
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for m in module_list]
    return sizes, hooks


def test_encoder_shapes():
    torch.manual_seed(0)
    encoder = ConvEncoder(32)
    convs = [m for m in encoder.convs if isinstance(m, nn.Conv2d)]
    sizes, hooks = record_spatial_sizes(convs)
    out = encoder(torch.rand(2, 3, 3, 64, 64) - 0.5)
    for hook in hooks:
        hook.remove()
    assert out.shape == (2, 3, 1024)
    assert encoder.embed_size == 1024
    assert sizes == [31, 14, 6, 2]
    assert ConvEncoder(4)(torch.zeros(5, 3, 64, 64)).shape == (5, 8 * 4 * 2 * 2)


def test_decoder_shapes():
    torch.manual_seed(0)
    decoder = ConvDecoder(230, 32)
    first_input = []
    pre = decoder.deconvs[0].register_forward_pre_hook(lambda m, i: first_input.append(i[0].shape))
    deconvs = [m for m in decoder.deconvs if isinstance(m, nn.ConvTranspose2d)]
    sizes, hooks = record_spatial_sizes(deconvs)
    out = decoder(torch.randn(2, 3, 230))
    for hook in hooks + [pre]:
        hook.remove()
    assert out.shape == (2, 3, 3, 64, 64)
    assert first_input == [(6, 128, 5, 5)]
    assert sizes == [13, 30, 64]


def test_decoder_first_layer_equals_transposed_conv_on_1x1_input():
    torch.manual_seed(0)
    depth = 32
    decoder = ConvDecoder(230, depth)
    with torch.no_grad():
        decoder.deconv1_bias.normal_()  # zero at init; make the bias part of the check
    conv = nn.ConvTranspose2d(32 * depth, 4 * depth, 5, stride=2)
    with torch.no_grad():
        # Linear row o*25 + i*5 + j, column c  <->  ConvTranspose2d weight[c, o, i, j]
        conv.weight.copy_(decoder.deconv1.weight.reshape(4 * depth, 5, 5, 32 * depth).permute(3, 0, 1, 2))
        conv.bias.copy_(decoder.deconv1_bias.flatten())
    features = torch.randn(6, 230)
    with torch.no_grad():
        hidden = decoder.dense(features)
        as_linear = decoder.deconv1(hidden).reshape(6, 4 * depth, 5, 5) + decoder.deconv1_bias
        as_conv = conv(hidden[:, :, None, None])
        torch.testing.assert_close(as_conv, as_linear, rtol=1e-5, atol=1e-5)
        # and the whole decoder is the conv stack written with that transposed conv
        full = decoder.deconvs(torch.relu(as_conv))
        torch.testing.assert_close(decoder(features), full, rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in (decoder.deconv1.weight, decoder.deconv1_bias)) == sum(
        p.numel() for p in conv.parameters())


# ---------------------------------------------------------------------------- image conversion
def test_preprocess_layout_and_range_and_round_trip():
    rng = np.random.default_rng(0)
    images = torch.as_tensor(rng.integers(0, 256, size=(4, 2, 64, 64, 3), dtype=np.uint8))
    images[0, 0, 0, 0] = torch.tensor([0, 255, 128], dtype=torch.uint8)
    x = preprocess(images)
    assert x.shape == (4, 2, 3, 64, 64) and x.dtype == torch.float32
    assert x.min().item() >= -0.5 and x.max().item() <= 0.5
    # channel c of pixel (h, w) moves to x[..., c, h, w]
    assert x[0, 0, :, 0, 0].tolist() == pytest.approx([-0.5, 0.5, 128 / 255 - 0.5], abs=1e-6)
    torch.testing.assert_close(x[1, 1, 2, 10, 20], images[1, 1, 10, 20, 2].float() / 255 - 0.5)
    back = to_uint8(x)
    assert back.dtype == torch.uint8 and back.shape == images.shape
    assert torch.equal(back, images)
    # a single frame (no leading dims) and out-of-range floats (decoder outputs) clamp to 0..255
    single = images[0, 0]
    assert preprocess(single).shape == (3, 64, 64)
    assert torch.equal(to_uint8(preprocess(single)), single)
    wild = to_uint8(torch.tensor([-3.0, 0.0, 3.0]).reshape(3, 1, 1).expand(3, 2, 2))
    assert wild[0, 0].tolist() == [0, 128, 255]
