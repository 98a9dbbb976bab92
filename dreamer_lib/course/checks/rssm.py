"""Checks for lesson 3 (the RSSM): the KL between diagonal Gaussians, free nats, one RSSM step.

Where a result differs from the reference's, the check computes what each usual mistake gives
on the same inputs (the KL the other way round, free nats clamped per element, the prior read
from h_{t-1}, ...) and names the one the learner's result equals."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dreamer_lib import rssm as reference
from dreamer_lib.course.checks import (call, expect_close, expect_shape, fail, gradient_paths, passed, same,
                                       seeded)
from dreamer_lib.rssm import RSSMState


def _random_state(generator, *shape, stoch: int, deter: int = 3) -> RSSMState:
    mean = torch.randn(*shape, stoch, generator=generator)
    std = 0.2 + 1.8 * torch.rand(*shape, stoch, generator=generator)
    sample = mean + std * torch.randn(*shape, stoch, generator=generator)
    return RSSMState(mean, std, sample, torch.randn(*shape, deter, generator=generator))


def _normal(state: RSSMState) -> torch.distributions.Normal:
    return torch.distributions.Normal(state.mean, state.std)


def leaf_state(generator, *shape, stoch: int) -> RSSMState:
    """A state with unequal stds whose mean and std are leaves that require grad (its sample is
    another tensor, so that a formula that reads stoch for mean does not pass)."""
    state = _random_state(generator, *shape, stoch=stoch)
    return state._replace(mean=state.mean.requires_grad_(True), std=state.std.requires_grad_(True))


def check_kl_divergence(kl_divergence) -> None:
    """kl_divergence(q, p) -> KL(q || p) summed over the stoch dimension, shape (...)."""
    ex = "3.1"
    g = seeded(0)
    q, p = leaf_state(g, 5, 4, stoch=6), leaf_state(g, 5, 4, stoch=6)
    expected = torch.distributions.kl_divergence(_normal(q), _normal(p)).sum(-1)
    out = call(ex, kl_divergence, q, p, what="calling your kl_divergence(q, p)")
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (5, 4, 6):
        fail(ex, "the result has shape (5, 4, 6), one KL per stoch dimension. The dimensions of a diagonal "
                 "Gaussian are independent, so its KL is the SUM of the per-dimension KLs: add .sum(-1).")
    expect_shape(ex, "kl_divergence(q, p) for states of shape (5, 4, stoch=6)", out, (5, 4))
    if not torch.allclose(out.float(), expected, atol=1e-4, rtol=1e-4):
        # Name the mistake when the result is one of the usual wrong formulas.
        var_ratio, mean_term = (q.std / p.std).pow(2), ((q.mean - p.mean) / p.std).pow(2)
        candidates = {
            "KL(p || q), the divergence in the other direction: the first argument is the posterior q, and "
            "the formula divides by the SECOND argument's std (the prior's)":
                torch.distributions.kl_divergence(_normal(p), _normal(q)).sum(-1),
            "the per-dimension KLs averaged instead of summed: use .sum(-1), not .mean(-1)":
                expected / 6,
            "what you get when the std ratio is not squared: (sigma_q / sigma_p)^2 is a ratio of VARIANCES, "
            "and std holds standard deviations":
                0.5 * ((q.std / p.std) + mean_term - 1 - (q.std / p.std).log()).sum(-1),
            "what you get when the mean difference is divided by sigma_p instead of sigma_p^2: the mean term "
            "is (mu_q - mu_p)^2 / sigma_p^2, and std holds standard deviations":
                0.5 * (var_ratio + (q.mean - p.mean).pow(2) / p.std - 1 - var_ratio.log()).sum(-1),
            "what you get with log(sigma_q / sigma_p) where log(sigma_q^2 / sigma_p^2) belongs (a factor 2 on "
            "the log term): the log term is a log of the VARIANCE ratio":
                0.5 * (var_ratio + mean_term - 1 - (q.std / p.std).log()).sum(-1),
            "what you get with the samples (stoch) where the means belong: the KL between two Gaussians depends "
            "on their parameters, mean and std, not on a draw from them":
                torch.distributions.kl_divergence(torch.distributions.Normal(q.stoch, q.std),
                                                  torch.distributions.Normal(p.stoch, p.std)).sum(-1),
            "what you get when std is treated as the variance (std = sqrt(variance) throughout)":
                torch.distributions.kl_divergence(torch.distributions.Normal(q.mean, q.std.sqrt()),
                                                  torch.distributions.Normal(p.mean, p.std.sqrt())).sum(-1),
        }
        for mistake, value in candidates.items():
            if torch.allclose(out.float(), value, atol=1e-4, rtol=1e-4):
                fail(ex, f"your result equals {mistake}.")
    expect_close(ex, "KL(q || p)", out, expected, atol=1e-4,
                 hint="Compare with torch.distributions.kl_divergence(Normal(q.mean, q.std), "
                      "Normal(p.mean, p.std)).sum(-1).")
    trains = ("The KL term trains both sides: it pulls the prior towards what the posterior saw (so that it learns to "
              "predict) and the posterior towards the prior. Keep the whole formula in torch, undetached.")
    gradient_paths(ex, {"KL(q || p)": (out, expected)},
                   {"q.mean": q.mean, "q.std": q.std, "p.mean": p.mean, "p.std": p.std},
                   stops={("KL(q || p)", name): f"no gradient flows from your KL back to {name}. {trains}"
                          for name in ("q.mean", "q.std", "p.mean", "p.std")})
    itself = call(ex, kl_divergence, q, q, what="calling your kl_divergence(q, q)")
    expect_close(ex, "KL(q || q)", itself, torch.zeros(5, 4), atol=1e-5, hint="The KL of a distribution to itself is 0.")
    passed(ex, "KL(q || p) of diagonal Gaussians matches torch.distributions, summed over stoch dims.")


def _states_with_kl(kls: torch.Tensor, stoch: int = 3):
    """A posterior and a prior whose KL(posterior || prior) is exactly `kls` (any shape); the
    posterior mean requires grad. Both have unit std and differ only in the first mean dim."""
    mean = torch.zeros(*kls.shape, stoch)
    mean[..., 0] = (2 * kls).sqrt()
    mean.requires_grad_(True)
    ones, zeros = torch.ones(*kls.shape, stoch), torch.zeros(*kls.shape, stoch)
    deter = torch.zeros(*kls.shape, 2)
    return RSSMState(mean, ones, mean, deter), RSSMState(zeros, ones, zeros, deter), mean


TF1 = ("you clamped each element, the per-element TF1 form the lesson shows for comparison "
       "(torch.clamp(kl - free_nats, min=0).mean(), or mean(max(kl, free_nats))). The exercise is the official "
       "TF2 form: average the KL over batch and time FIRST, then clamp the average, "
       "torch.clamp(kl.mean(), min=free_nats)")


def _call_kl_loss(ex, kl_loss, posterior, prior, free_nats):
    out = call(ex, kl_loss, posterior, prior, free_nats=free_nats,
               what=f"calling your kl_loss(posterior, prior, free_nats={free_nats})")
    if not (isinstance(out, tuple) and len(out) == 2):
        fail(ex, f"kl_loss should return two tensors (the clamped loss, the raw mean KL); got {type(out).__name__}"
                 + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "") + ".")
    loss, logged = out
    expect_shape(ex, "the loss", loss, ())
    expect_shape(ex, "the logged KL", logged, ())
    return loss, logged


def _backward(ex, loss, what="the loss"):
    if not loss.requires_grad:
        fail(ex, f"{what} carries no gradient: the KL term must train both the posterior and the prior. Keep the "
                 "computation in torch (no .item(), float() or .detach() on the way).")
    call(ex, loss.backward, what=f"backpropagating through {what}")


def check_kl_loss(kl_loss) -> None:
    """kl_loss(posterior, prior, free_nats) -> (max(mean KL, free_nats), mean KL)."""
    ex = "3.2"
    # 1. Per-element KLs 0.5 and 4.5, half each: the mean (2.5) is below 3 free nats, some
    # elements above, so every way of clamping gives a different number.
    kls = torch.tensor([[0.5, 4.5, 0.5, 4.5], [4.5, 0.5, 4.5, 0.5]])  # (T=2, B=4)
    post, prior, mean = _states_with_kl(kls)
    loss, logged = _call_kl_loss(ex, kl_loss, post, prior, 3.0)
    value = float(loss.detach())
    per_dim = torch.distributions.kl_divergence(_normal(post), _normal(prior)).detach()  # (T, B, stoch)
    per_dim_message = ("the loss is {v:.4g} = " + "{form}: you applied the free nats to each stoch dimension. "
                       "They bound the KL of the whole state (summed over its dimensions, averaged over batch and time): "
                       "torch.clamp(kl_divergence(posterior, prior).mean(), min=free_nats).")
    known = {
        float(per_dim.clamp(min=3.0).sum(-1).mean()): per_dim_message.replace(
            "{form}", "mean over states of sum over dims of max(KL_dim, free_nats)"),
        float(per_dim.mean((0, 1)).clamp(min=3.0).sum()): per_dim_message.replace(
            "{form}", "sum over dims of max(mean KL_dim, free_nats)"),
        float(per_dim.clamp(min=1.0).sum(-1).mean()): per_dim_message.replace(
            "{form}", "the free nats shared out over the dimensions, max(KL_dim, free_nats / stoch)"),
        float(kls.sum()): "the loss is {v:.4g}, the SUM of the KLs over batch and time: average them (.mean()).",
        3.75: "the loss is mean(max(KL, free_nats)) = {v:.4g}: " + TF1 + ". Expected 3.0 here: the mean KL is 2.5, "
              "below the 3 free nats.",
        0.75: "the loss is mean(max(KL - free_nats, 0)) = {v:.4g}: " + TF1 + ". Expected 3.0 here: the mean KL is "
              "2.5, below the 3 free nats.",
        2.5: "the loss is 2.5, the mean KL itself: the free-nats clamp is missing. Return "
             "torch.clamp(mean_kl, min=free_nats) (or max(mean_kl, free_nats)) as the loss.",
        float(kls.sum(0).mean()): "the loss is {v:.4g}: the KL summed over time and averaged over the batch. As the "
                                  "official code, average over both batch and time (.mean()), then clamp.",
        float(kls.mean(0).sum()): "the loss is {v:.4g}: the KL averaged over time and summed over the batch. As the "
                                  "official code, average over both batch and time (.mean()), then clamp.",
    }
    for known_value, message in known.items():
        if abs(value - known_value) < 1e-4:
            fail(ex, message.format(v=value))
    if abs(value - 3.0) > 1e-4:
        fail(ex, f"with per-state KLs of 0.5 and 4.5 (mean 2.5) and 3 free nats the loss should be "
                 f"max(2.5, 3) = 3.0; got {value:.4g}.")
    if abs(float(logged.detach()) - 3.0) < 1e-4:
        fail(ex, "the second value is 3.0, the clamped loss. Return the raw mean KL (2.5 here) for logging: "
                 "it is the only way to see how far below the free nats the KL sits.")
    expect_close(ex, "the logged mean KL", logged, torch.tensor(2.5), atol=1e-4,
                 hint="It is the KL averaged over batch and time, before the clamp.")
    if loss.requires_grad:
        call(ex, loss.backward, what="backpropagating through the loss")
    if mean.grad is not None and mean.grad.abs().max() > 0:
        fail(ex, "the loss is 3.0 but it still sends a gradient into the states. Below the free nats the clamped "
                 "loss must be flat: torch.clamp(mean_kl, min=free_nats).")

    # 2. The free nats are the argument, not a constant: mean KL 1.0 under 1.7 free nats.
    kls = torch.tensor([[0.5, 1.5], [1.5, 0.5]])
    post, prior, _ = _states_with_kl(kls)
    loss, logged = _call_kl_loss(ex, kl_loss, post, prior, 1.7)
    if abs(float(loss.detach()) - 3.0) < 1e-4:
        fail(ex, "with free_nats=1.7 and a mean KL of 1.0 your loss is 3.0: you clamp at 3 whatever free_nats says. "
                 "Use the argument: torch.clamp(mean_kl, min=free_nats).")
    expect_close(ex, "the loss for a mean KL of 1.0 and free_nats=1.7", loss, torch.tensor(1.7), atol=1e-4,
                 hint="max(mean KL, free_nats) = max(1.0, 1.7).")

    # 3. Mean KL 4 (elements 2 and 6), above the free nats: the loss is the mean KL and has its gradient.
    kls = torch.tensor([[2.0, 6.0], [6.0, 2.0]])
    post, prior, mean = _states_with_kl(kls)
    loss, logged = _call_kl_loss(ex, kl_loss, post, prior, 3.0)
    expect_close(ex, "the loss for a mean KL of 4 (above 3 free nats)", loss, torch.tensor(4.0), atol=1e-4)
    expect_close(ex, "the logged mean KL", logged, torch.tensor(4.0), atol=1e-4)
    ref_post, ref_prior, ref_mean = _states_with_kl(kls)
    reference.kl_loss(ref_post, ref_prior, free_nats=3.0)[0].backward()
    _backward(ex, loss)
    if mean.grad is None:
        fail(ex, "above the free nats the loss must send a gradient to the posterior; yours sends none "
                 "(is something detached?).")
    expect_close(ex, "the gradient of the loss w.r.t. the posterior mean", mean.grad, ref_mean.grad, atol=1e-5)

    # 4. Unequal stds, where the direction of the KL matters (with equal stds it does not: the KLs
    # above are symmetric). Mean KL about 29, far above the free nats.
    g = seeded(5)
    post, prior = leaf_state(g, 4, 3, stoch=6), leaf_state(g, 4, 3, stoch=6)
    loss, logged = _call_kl_loss(ex, kl_loss, post, prior, 3.0)
    with torch.no_grad():
        expected = reference.kl_divergence(post, prior).mean()
        backwards_kl = reference.kl_divergence(prior, post).mean()
    for name, value in (("loss", loss), ("logged mean KL", logged)):
        if not same(value, expected, atol=1e-4) and same(value, backwards_kl, atol=1e-4):
            fail(ex, f"your {name} is {float(value.detach()):.4g} = the mean of KL(prior || posterior): you computed "
                     f"KL(prior || posterior); Dreamer's loss is KL(posterior || prior) "
                     f"(expected {float(expected):.4g}): "
                     "call kl_divergence(posterior, prior), the posterior first. The two directions agree only "
                     "when the stds are equal; the reversed one pulls the posterior as wide as the prior "
                     "(lesson 7 shows the symptom).")
    expect_close(ex, "the loss for posterior and prior with unequal stds", loss, expected, atol=1e-4,
                 hint="mean over batch and time of kl_divergence(posterior, prior), then the clamp.")
    expect_close(ex, "the logged mean KL for posterior and prior with unequal stds", logged, expected, atol=1e-4)
    _backward(ex, loss)
    ref_post, ref_prior = (RSSMState(s.mean.detach().requires_grad_(True), s.std.detach().requires_grad_(True),
                                     s.mean.detach(), s.deter) for s in (post, prior))
    reference.kl_loss(ref_post, ref_prior, free_nats=3.0)[0].backward()
    for who, state, ref_state in (("posterior", post, ref_post), ("prior", prior, ref_prior)):
        grads = (state.mean.grad, state.std.grad)
        if all(g is None or g.abs().max() == 0 for g in grads):
            fail(ex, f"no gradient reaches the {who}: is it detached? Dreamer's KL term trains both sides: it "
                     "pulls the prior towards what the posterior saw (so that it learns to predict) and the "
                     "posterior towards the prior.")
        for field, grad, ref_grad in (("mean", grads[0], ref_state.mean.grad), ("std", grads[1], ref_state.std.grad)):
            if grad is None:
                fail(ex, f"no gradient reaches the {who}'s {field}: keep the whole KL formula in torch, undetached.")
            expect_close(ex, f"the gradient of the loss w.r.t. the {who}'s {field}", grad, ref_grad, atol=1e-5)
    passed(ex, "free nats clamp the batch-mean KL; the raw mean KL is returned for logging.")


def _check_gaussian(ex: str, name: str, out, expected, stats_layer, min_std: float, recipe: str) -> None:
    """recipe: how the reference computes this Gaussian's stats, for the hint when they differ."""
    for field in ("mean", "std", "stoch", "deter"):
        if not hasattr(out, field):
            fail(ex, f"{name} should return an RSSMState(mean, std, stoch, deter); got {type(out).__name__}, which "
                     f"has no field {field!r}" + (" (did you forget `return`?)" if out is None else "") + ".")
    expect_close(ex, f"{name}.deter", out.deter, expected.deter)
    expect_close(ex, f"{name}.mean", out.mean, expected.mean,
                 hint=f"The reference: mean, raw_std = {recipe}.chunk(2, -1).")
    if torch.allclose(out.std.float() + min_std, expected.std, atol=1e-5):
        fail(ex, f"{name}.std is softplus(x), without the minimum: std = softplus(x) + min_std "
                 f"(min_std={min_std}), which keeps the distributions from collapsing to a point.")
    expect_close(ex, f"{name}.std", out.std, expected.std,
                 hint="std = softplus(second half of the stats) + self.min_std.")
    if not isinstance(out.stoch, torch.Tensor) or out.stoch.grad_fn is None:
        fail(ex, f"{name}.stoch carries no gradient. Sample with the reparameterisation trick, "
                 "stoch = mean + std * torch.randn_like(std), not with .sample(), under no_grad, or detached: "
                 "the world model and the actor learn by backpropagating through these samples.")
    grads = call(ex, torch.autograd.grad, out.stoch.sum(), stats_layer.weight, allow_unused=True, retain_graph=True,
                 what=f"backpropagating from {name}.stoch")[0]
    stoch_size = out.mean.shape[-1]
    if grads is None or grads[:stoch_size].abs().max() == 0:
        fail(ex, f"no gradient reaches {name}'s mean through stoch: stoch = mean + std * noise.")
    if grads[stoch_size:].abs().max() == 0:
        fail(ex, f"no gradient reaches {name}'s std through stoch (is std or the product detached?): "
                 "stoch = mean + std * noise, so d stoch / d std = noise.")
    noise = ((out.stoch - out.mean) / out.std).detach()
    if noise.abs().max() < 1e-6:
        fail(ex, f"{name}.stoch equals the mean: add std * torch.randn_like(std).")
    if not (abs(float(noise.mean())) < 0.3 and 0.75 < float(noise.std()) < 1.25):
        fail(ex, f"(stoch - mean) / std should be standard normal noise; it has mean {float(noise.mean()):.3g} "
                 f"and std {float(noise.std()):.3g}. Use std * torch.randn_like(std).")


# Activations a learner may reach for instead of the ELU the official RSSM uses everywhere.
OTHER_ACTIVATIONS = {"ReLU": F.relu, "tanh": torch.tanh}


def _prior_mistakes(ref, prev: RSSMState, action: torch.Tensor):
    """(what the learner's prior would give, message) for the usual mistakes of the prior step,
    computed with the reference's layers (which hold the learner's parameters). Each is a dict
    of the fields it determines: deter and/or the Gaussian's raw stats."""
    stats_of = lambda h: ref.prior_stats(F.elu(ref.prior_hidden(h)))  # noqa: E731
    x_in = torch.cat([prev.stoch, action], -1)
    h = ref.gru(F.elu(ref.input_layer(x_in)), prev.deter)
    yield ({"deter": prev.deter},
           "prior(...).deter is h_{t-1} unchanged: the GRU step is missing: h_t = self.gru(x, prev_state.deter) "
           "with x = elu(self.input_layer(cat[z_{t-1}, a_{t-1}])).")
    yield ({"deter": ref.gru(F.elu(ref.input_layer(x_in)))},
           "prior(...).deter is the GRU cell run from a zero state: self.gru(x) without its second argument. Pass the "
           "previous deterministic state: h_t = self.gru(x, prev_state.deter).")
    yield ({"deter": ref.gru(ref.input_layer(x_in), prev.deter)},
           "prior(...).deter is what you get without the ELU on the input layer: x = "
           "F.elu(self.input_layer(cat[z_{t-1}, a_{t-1}])) before the GRU (as the official img_step).")
    for other in OTHER_ACTIVATIONS:
        yield ({"deter": ref.gru(OTHER_ACTIVATIONS[other](ref.input_layer(x_in)), prev.deter)},
               f"prior(...).deter is what you get with {other} on the input layer where the RSSM uses ELU: x = "
               "F.elu(self.input_layer(cat[z_{t-1}, a_{t-1}])) (the official code's activation throughout the RSSM).")
    yield ({"deter": ref.gru(F.elu(ref.input_layer(torch.cat([action, prev.stoch], -1))), prev.deter)},
           "prior(...).deter is what you get with the input concatenated as [a_{t-1}, z_{t-1}]: the input layer "
           "was built for torch.cat([prev_state.stoch, prev_action], -1), stoch first.")
    yield ({"deter": ref.gru(F.elu(ref.input_layer(torch.cat([prev.mean, action], -1))), prev.deter)},
           "prior(...).deter is what you get feeding the previous state's MEAN to the input layer: the RSSM "
           "feeds its sample, prev_state.stoch, so that the noise of z_{t-1} reaches h_t.")
    yield ({"deter": h, "stats": stats_of(prev.deter)},
           "your prior's mean and std are computed from h_{t-1} (prev_state.deter), the state BEFORE the GRU step. "
           "p(z_t | h_t) reads the NEW h_t that the GRU just computed: "
           "self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter) with "
           "deter = self.gru(x, prev_state.deter).")
    yield ({"deter": h, "stats": ref.prior_stats(ref.prior_hidden(h))},
           "your prior's mean and std are what you get without the ELU after prior_hidden: "
           "self.prior_stats(F.elu(self.prior_hidden(h_t))).")
    for other in OTHER_ACTIVATIONS:
        yield ({"deter": h, "stats": ref.prior_stats(OTHER_ACTIVATIONS[other](ref.prior_hidden(h)))},
               f"your prior's mean and std are what you get with {other} after prior_hidden where the RSSM uses ELU: "
               "self.prior_stats(F.elu(self.prior_hidden(h_t))).")


def _gaussian_mistakes(stats: torch.Tensor, min_std: float):
    """(mean, std, message) of the usual wrong ways to turn stats into a Gaussian."""
    first, second = stats.float().chunk(2, -1)
    yield (second, F.softplus(first) + min_std,
           "the mean and the std are swapped: the FIRST half of the stats is the mean, the second half the raw std "
           "(mean, std = stats.chunk(2, -1)).")
    yield (first, second.exp() + min_std,
           "std = exp(raw) + min_std: as the official code, use softplus, std = F.softplus(raw) + self.min_std "
           "(exp grows too fast for a std).")
    yield (first, second + min_std,
           "std = raw + min_std, without the softplus: the raw half can be negative, and a std cannot. "
           "std = F.softplus(raw) + self.min_std.")


def _match_prior(ex: str, name: str, out: RSSMState, mistakes, min_std: float) -> None:
    for fields, message in mistakes:
        if "deter" in fields and not same(out.deter, fields["deter"]):
            continue
        if "stats" in fields:
            mean, std = fields["stats"].float().chunk(2, -1)
            if not (same(out.mean, mean) and same(out.std, F.softplus(std) + min_std)):
                continue
        fail(ex, message)


def check_rssm_step(RSSM) -> None:
    """One prior step and one posterior step of the learner's RSSM class against the reference."""
    ex = "3.3"
    action_size, embed_size, stoch, deter, hidden, min_std, batch = 2, 12, 5, 7, 9, 0.1, 64
    torch.manual_seed(0)
    model = call(ex, RSSM, action_size, embed_size, stoch, deter, hidden, min_std,
                 what=f"building RSSM({action_size}, {embed_size}, {stoch}, {deter}, {hidden}, {min_std})")
    ref = reference.RSSM(action_size, embed_size, stoch, deter, hidden, min_std)
    try:
        ref.load_state_dict(model.state_dict())
    except RuntimeError as error:
        fail(ex, f"your RSSM's parameters differ from the reference's (keep __init__ as given): {error}")
    g = seeded(3)
    # Leaves that require grad: the gradient paths through the step are checked after its values.
    prev = RSSMState(*(x.requires_grad_(True) for x in _random_state(g, batch, stoch=stoch, deter=deter)))
    action = (torch.rand(batch, action_size, generator=g) * 2 - 1).requires_grad_(True)
    embed = torch.randn(batch, embed_size, generator=g).requires_grad_(True)
    prior_hints = ((r"shape|size|mat1|match", "The prior step: x = F.elu(self.input_layer(torch.cat([prev_state.stoch, "
                    "prev_action], -1))), deter = self.gru(x, prev_state.deter), then self._distribution(self.prior_stats("
                    "F.elu(self.prior_hidden(deter))), deter)."),)
    posterior_hints = ((r"shape|size|mat1|match", "The posterior step: x = F.elu(self.posterior_hidden(torch.cat("
                        "[prior.deter, embed], -1))), then self._distribution(self.posterior_stats(x), prior.deter)."),)

    # Prior: h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}]), z_t ~ p(z_t | h_t).
    torch.manual_seed(1)
    prior = call(ex, model.prior, prev, action, what="calling your RSSM.prior(prev_state, prev_action)",
                 hints=prior_hints)
    torch.manual_seed(1)
    ref_prior = ref.prior(prev, action)
    if isinstance(prior, RSSMState) and all(isinstance(x, torch.Tensor) for x in prior):
        with torch.no_grad():
            ok_deter = same(prior.deter, ref_prior.deter)
            ok_gaussian = same(prior.mean, ref_prior.mean) and same(prior.std, ref_prior.std)
            if not (ok_deter and ok_gaussian):
                _match_prior(ex, "prior(...)", prior, _prior_mistakes(ref, prev, action), min_std)
                if ok_deter:
                    stats = ref.prior_stats(F.elu(ref.prior_hidden(ref_prior.deter)))
                    for mean, std, message in _gaussian_mistakes(stats, min_std):
                        if same(prior.mean, mean) and same(prior.std, std):
                            fail(ex, f"in _distribution (seen in prior(...)): {message}")
        expect_close(ex, "prior(...).deter", prior.deter, ref_prior.deter,
                     hint="h_t = self.gru(x, h_{t-1}) with x = elu(self.input_layer(cat[z_{t-1}, a_{t-1}])).")
    _check_gaussian(ex, "prior(...)", prior, ref_prior, model.prior_stats, min_std,
                    recipe="self.prior_stats(F.elu(self.prior_hidden(h_t)))")
    h, z, a = "h_{t-1} (prev_state.deter)", "z_{t-1} (prev_state.stoch)", "a_{t-1} (prev_action)"
    reads_detached_h = ("your prior's mean and std read a detached h_t (self.prior_hidden(deter.detach()), or the "
                        "stats detached): the KL term can no longer train the GRU, so h_t is not shaped to predict "
                        "z_t.")
    gradient_paths(ex, {f"prior(...).{field}": (getattr(prior, field), getattr(ref_prior, field))
                        for field in ("deter", "mean", "std")},
                   {h: prev.deter, z: prev.stoch, a: action}, what=" in one prior step", stops={
        ("prior(...).deter", (h, z, a)): "h_t is cut from everything it comes from (the GRU step under "
                                         "torch.no_grad(), or its output detached): no gradient flows from h_t back "
                                         "to h_{t-1}, z_{t-1} or a_{t-1}, so the world model cannot learn through "
                                         "time and the actor's gradient cannot reach its actions.",
        ("prior(...).deter", h): "h_{t-1} is detached in your GRU step (self.gru(x, prev_state.deter.detach()), or "
                                 "under torch.no_grad()): no gradient flows from h_t back to h_{t-1}, so the world "
                                 "model can no longer learn through time: a loss at step t cannot train what the model "
                                 "remembered from the steps before it.",
        ("prior(...).deter", z): "z_{t-1} is detached on its way into the GRU (prev_state.stoch.detach(), or the input "
                                 "x detached): the losses at step t can no longer train the stochastic state of step "
                                 "t-1, and the actor's gradient cannot flow back along an imagined trajectory.",
        ("prior(...).deter", a): "a_{t-1} is detached on its way into the GRU: the actor learns by backpropagating the "
                                 "imagined return through this prior step into its actions (section 3); with the "
                                 "action detached, no gradient reaches the actor.",
        ("prior(...).mean", h): reads_detached_h, ("prior(...).std", h): reads_detached_h})

    # Posterior: same h_t, plus the embedding.
    given = RSSMState(*(x.detach().requires_grad_(True) for x in ref_prior))
    torch.manual_seed(2)
    post = call(ex, model.posterior, given, embed, what="calling your RSSM.posterior(prior, embed)",
                hints=posterior_hints)
    torch.manual_seed(2)
    ref_post = ref.posterior(given, embed)
    if isinstance(post, RSSMState) and all(isinstance(x, torch.Tensor) for x in post):
        other_h = given._replace(deter=given.deter + torch.randn(given.deter.shape, generator=g))
        moved = call(ex, model.posterior, other_h, embed, what="calling your RSSM.posterior(prior, embed)",
                     hints=posterior_hints)
        if torch.allclose(moved.mean, post.mean):
            fail(ex, "the posterior does not change when h_t changes: q(z_t | h_t, e_t) must see both the "
                     "deterministic state and the embedding: posterior_hidden(cat[prior.deter, embed]).")
        if not torch.equal(post.deter, given.deter):
            fail(ex, "the posterior's deter should be the prior's h_t itself: the observation only changes z_t.")
        with torch.no_grad():
            swapped = ref.posterior_stats(F.elu(ref.posterior_hidden(torch.cat([embed, given.deter], -1))))
            hidden = ref.posterior_hidden(torch.cat([given.deter, embed], -1))
        variants = [(swapped, "the posterior's input is concatenated as [embed, h_t]: the layer was built for "
                              "torch.cat([prior.deter, embed], -1), h_t first."),
                    (ref.posterior_stats(hidden), "the posterior's mean and std are what you get without the ELU after "
                                                  "posterior_hidden: self.posterior_stats(F.elu(self.posterior_hidden("
                                                  "...))).")]
        variants += [(ref.posterior_stats(activation(hidden)),
                      f"the posterior's mean and std are what you get with {other} after posterior_hidden where the "
                      "RSSM uses ELU: self.posterior_stats(F.elu(self.posterior_hidden(...))).")
                     for other, activation in OTHER_ACTIVATIONS.items()]
        for stats, message in variants:
            if same(post.mean, stats.float().chunk(2, -1)[0]):
                fail(ex, message)
    _check_gaussian(ex, "posterior(...)", post, ref_post, model.posterior_stats, min_std,
                    recipe="self.posterior_stats(F.elu(self.posterior_hidden(torch.cat([prior.deter, embed], -1))))")
    h, e = "h_t (prior.deter)", "e_t (embed)"
    reads_detached_h = ("your posterior reads a detached h_t (posterior_hidden(cat[prior.deter.detach(), embed]), or "
                        "under torch.no_grad()): the reconstruction, reward and KL losses can no longer train the GRU "
                        "through the posterior, so the model's memory h_t learns nothing from the images.")
    reads_detached_e = ("the embedding is detached in your posterior (embed.detach(), or under torch.no_grad()): the "
                        "encoder gets no gradient and never learns to see.")
    gradient_paths(ex, {f"posterior(...).{field}": (getattr(post, field), getattr(ref_post, field))
                        for field in ("deter", "mean", "std")},
                   {h: given.deter, e: embed}, what=" in one posterior step", stops={
        ("posterior(...).deter", h): "your posterior's deter is a detached h_t: return prior.deter itself. The decoder "
                                     "and the reward head read [z_t, h_t] from the posterior, so with h_t detached "
                                     "their losses can no longer train the GRU.",
        ("posterior(...).mean", h): reads_detached_h, ("posterior(...).std", h): reads_detached_h,
        ("posterior(...).mean", e): reads_detached_e, ("posterior(...).std", e): reads_detached_e})

    # The rollouts use the two methods: shapes of a short filtered sequence.
    embeds = torch.randn(3, 4, embed_size, generator=g)
    actions = torch.rand(3, 4, action_size, generator=g) * 2 - 1
    start = call(ex, model.get_initial_state, 4, what="calling your RSSM.get_initial_state(4)")
    posteriors, priors = call(ex, model.rollout_observation, embeds, actions, start,
                              what="calling RSSM.rollout_observation (given; it calls your prior and posterior) on "
                                   "embeds (3, 4, embed) and actions (3, 4, action)")
    expect_shape(ex, "rollout_observation(...)[0].stoch", posteriors.stoch, (3, 4, stoch))
    expect_shape(ex, "rollout_observation(...)[1].deter", priors.deter, (3, 4, deter))
    passed(ex, "prior and posterior match the reference; samples are reparameterised (gradients reach mean and std).")
