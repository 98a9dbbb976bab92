"""Checks for lesson 3 (the RSSM): the KL between diagonal Gaussians, free nats, one RSSM step."""
from __future__ import annotations

import torch

from dreamer_lib import rssm as reference
from dreamer_lib.course.checks import expect_close, expect_shape, fail, passed, seeded
from dreamer_lib.rssm import RSSMState


def _random_state(generator, *shape, stoch: int, deter: int = 3) -> RSSMState:
    mean = torch.randn(*shape, stoch, generator=generator)
    std = 0.2 + 1.8 * torch.rand(*shape, stoch, generator=generator)
    sample = mean + std * torch.randn(*shape, stoch, generator=generator)
    return RSSMState(mean, std, sample, torch.randn(*shape, deter, generator=generator))


def _normal(state: RSSMState) -> torch.distributions.Normal:
    return torch.distributions.Normal(state.mean, state.std)


def check_kl_divergence(kl_divergence) -> None:
    """kl_divergence(q, p) -> KL(q || p) summed over the stoch dimension, shape (...)."""
    ex = "3.1"
    g = seeded(0)
    q, p = _random_state(g, 5, 4, stoch=6), _random_state(g, 5, 4, stoch=6)
    expected = torch.distributions.kl_divergence(_normal(q), _normal(p)).sum(-1)
    out = kl_divergence(q, p)
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
    same = kl_divergence(q, q)
    expect_close(ex, "KL(q || q)", same, torch.zeros(5, 4), atol=1e-5, hint="The KL of a distribution to itself is 0.")
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


def check_kl_loss(kl_loss) -> None:
    """kl_loss(posterior, prior, free_nats) -> (max(mean KL, free_nats), mean KL)."""
    ex = "3.2"
    # Per-element KLs 0.5 and 4.5, half each: the mean (2.5) is below 3 free nats, some elements above.
    kls = torch.tensor([[0.5, 4.5, 0.5, 4.5], [4.5, 0.5, 4.5, 0.5]])  # (T=2, B=4)
    post, prior, mean = _states_with_kl(kls)
    out = kl_loss(post, prior, free_nats=3.0)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail(ex, f"kl_loss should return two tensors (the clamped loss, the raw mean KL); got {type(out).__name__}.")
    loss, logged = out
    expect_shape(ex, "the loss", loss, ())
    expect_shape(ex, "the logged KL", logged, ())
    value = float(loss.detach())
    if abs(value - float(kls.sum())) < 1e-3:
        fail(ex, f"the loss is {value:.4g}, the SUM of the KLs over batch and time: average them (.mean()).")
    if abs(value - 3.75) < 1e-4:
        fail(ex, "the loss is mean(max(KL, free_nats)) = 3.75: you clamped each element, as the TF1 code did. "
                 "Like the official TF2 code, average the KL over batch and time first, then clamp the average "
                 "(expected 3.0 here: the mean KL is 2.5, below the 3 free nats).")
    if abs(value - 2.5) < 1e-4:
        fail(ex, "the loss is 2.5, the mean KL itself: the free-nats clamp is missing. Return "
                 "torch.clamp(mean_kl, min=free_nats) (or max(mean_kl, free_nats)) as the loss.")
    if abs(value - 3.0) > 1e-4:
        fail(ex, f"with per-state KLs of 0.5 and 4.5 (mean 2.5) and 3 free nats the loss should be "
                 f"max(2.5, 3) = 3.0; got {value:.4g}.")
    if abs(float(logged.detach()) - 3.0) < 1e-4:
        fail(ex, "the second value is 3.0, the clamped loss. Return the raw mean KL (2.5 here) for logging: "
                 "it is the only way to see how far below the free nats the KL sits.")
    expect_close(ex, "the logged mean KL", logged, torch.tensor(2.5), atol=1e-4,
                 hint="It is the KL averaged over batch and time, before the clamp.")
    loss.backward()
    if mean.grad is not None and mean.grad.abs().max() > 0:
        fail(ex, "the loss is 3.0 but it still sends a gradient into the states. Below the free nats the clamped "
                 "loss must be flat: torch.clamp(mean_kl, min=free_nats).")

    # Mean KL 4 (elements 2 and 6), above the free nats: the loss is the mean KL and has its gradient.
    kls = torch.tensor([[2.0, 6.0], [6.0, 2.0]])
    post, prior, mean = _states_with_kl(kls)
    loss, logged = kl_loss(post, prior, free_nats=3.0)
    expect_close(ex, "the loss for a mean KL of 4 (above 3 free nats)", loss, torch.tensor(4.0), atol=1e-4)
    expect_close(ex, "the logged mean KL", logged, torch.tensor(4.0), atol=1e-4)
    ref_post, ref_prior, ref_mean = _states_with_kl(kls)
    reference.kl_loss(ref_post, ref_prior, free_nats=3.0)[0].backward()
    loss.backward()
    if mean.grad is None:
        fail(ex, "above the free nats the loss must send a gradient to the posterior; yours sends none "
                 "(is something detached?).")
    expect_close(ex, "the gradient of the loss w.r.t. the posterior mean", mean.grad, ref_mean.grad, atol=1e-5)
    passed(ex, "free nats clamp the batch-mean KL; the raw mean KL is returned for logging.")


def _check_gaussian(ex: str, name: str, out, expected, stats_layer, min_std: float) -> None:
    for field in ("mean", "std", "stoch", "deter"):
        if not hasattr(out, field):
            fail(ex, f"{name} should return an RSSMState(mean, std, stoch, deter); it has no field {field!r}.")
    expect_close(ex, f"{name}.deter", out.deter, expected.deter)
    expect_close(ex, f"{name}.mean", out.mean, expected.mean,
                 hint="The first half of the stats layer's output is the mean (stats.chunk(2, -1)).")
    if torch.allclose(out.std.float() + min_std, expected.std, atol=1e-5):
        fail(ex, f"{name}.std is softplus(x), without the minimum: std = softplus(x) + min_std "
                 f"(min_std={min_std}), which keeps the distributions from collapsing to a point.")
    expect_close(ex, f"{name}.std", out.std, expected.std,
                 hint="std = softplus(second half of the stats) + self.min_std.")
    if not isinstance(out.stoch, torch.Tensor) or out.stoch.grad_fn is None:
        fail(ex, f"{name}.stoch carries no gradient. Sample with the reparameterisation trick, "
                 "stoch = mean + std * torch.randn_like(std), not with .sample(), under no_grad, or detached: "
                 "the world model and the actor learn by backpropagating through these samples.")
    grads = torch.autograd.grad(out.stoch.sum(), stats_layer.weight, allow_unused=True)[0]
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


def check_rssm_step(RSSM) -> None:
    """One prior step and one posterior step of the learner's RSSM class against the reference."""
    ex = "3.3"
    action_size, embed_size, stoch, deter, hidden, min_std, batch = 2, 12, 5, 7, 9, 0.1, 64
    torch.manual_seed(0)
    model = RSSM(action_size, embed_size, stoch, deter, hidden, min_std)
    ref = reference.RSSM(action_size, embed_size, stoch, deter, hidden, min_std)
    try:
        ref.load_state_dict(model.state_dict())
    except RuntimeError as error:
        fail(ex, f"your RSSM's parameters differ from the reference's (keep __init__ as given): {error}")
    g = seeded(3)
    prev = _random_state(g, batch, stoch=stoch, deter=deter)
    action = torch.rand(batch, action_size, generator=g) * 2 - 1
    embed = torch.randn(batch, embed_size, generator=g)

    # Prior: h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}]), z_t ~ p(z_t | h_t).
    torch.manual_seed(1)
    prior = model.prior(prev, action)
    torch.manual_seed(1)
    ref_prior = ref.prior(prev, action)
    if hasattr(prior, "deter"):
        expect_close(ex, "prior(...).deter", prior.deter, ref_prior.deter,
                     hint="h_t = self.gru(x, h_{t-1}) with x = elu(self.input_layer(cat[z_{t-1}, a_{t-1}])).")
    _check_gaussian(ex, "prior(...)", prior, ref_prior, model.prior_stats, min_std)

    # Posterior: same h_t, plus the embedding.
    given = ref_prior.detach()
    torch.manual_seed(2)
    post = model.posterior(given, embed)
    torch.manual_seed(2)
    ref_post = ref.posterior(given, embed)
    if hasattr(post, "mean") and hasattr(post, "deter"):
        other_h = given._replace(deter=given.deter + torch.randn(given.deter.shape, generator=g))
        moved = model.posterior(other_h, embed)
        if torch.allclose(moved.mean, post.mean):
            fail(ex, "the posterior does not change when h_t changes: q(z_t | h_t, e_t) must see both the "
                     "deterministic state and the embedding: posterior_hidden(cat[prior.deter, embed]).")
        if not torch.equal(post.deter, given.deter):
            fail(ex, "the posterior's deter should be the prior's h_t itself: the observation only changes z_t.")
    _check_gaussian(ex, "posterior(...)", post, ref_post, model.posterior_stats, min_std)

    # The rollouts use the two methods: shapes of a short filtered sequence.
    embeds = torch.randn(3, 4, embed_size, generator=g)
    actions = torch.rand(3, 4, action_size, generator=g) * 2 - 1
    posteriors, priors = model.rollout_observation(embeds, actions, model.get_initial_state(4))
    expect_shape(ex, "rollout_observation(...)[0].stoch", posteriors.stoch, (3, 4, stoch))
    expect_shape(ex, "rollout_observation(...)[1].deter", priors.deter, (3, 4, deter))
    passed(ex, "prior and posterior match the reference; samples are reparameterised (gradients reach mean and std).")
