"""The lesson-8 checks accept right solutions (several ways of writing each) and name the usual
mistakes."""
import copy

import pytest
import torch
import torch.nn.functional as F

from dreamer_lib.course.checks import CheckFailed
from dreamer_lib.course.checks.later_dreamers import (check_balanced_kl, check_return_scale,
                                                      check_straight_through_sample, check_update_slow_critic)
from dreamer_lib.rssm import kl_divergence


def assert_names(check, solution, words):
    with pytest.raises(CheckFailed) as failure:
        check(solution)
    message = str(failure.value)
    assert all(w.lower() in message.lower() for w in words), message


# ---------------------------------------------------------------- 8.1 straight-through sample
def mixed(logits):
    return 0.99 * logits.softmax(-1) + 0.01 / logits.shape[-1]


def st_multinomial(logits):
    probs = mixed(logits)
    drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(probs.shape[:-1])
    return F.one_hot(drawn, probs.shape[-1]).float() + probs - probs.detach(), probs


def st_one_hot_categorical(logits):
    probs = mixed(logits)
    sample = torch.distributions.OneHotCategorical(probs=probs).sample()
    return sample + probs - probs.detach(), probs


def st_gumbel_max(logits):
    probs = mixed(logits)
    gumbel = -torch.log(-torch.log(torch.rand_like(probs)))
    sample = F.one_hot((probs.log() + gumbel).argmax(-1), probs.shape[-1]).to(probs.dtype)
    return sample + (probs - probs.detach()), probs


def st_no_straight_through(logits):
    probs = mixed(logits)
    return torch.distributions.OneHotCategorical(probs=probs).sample(), probs


def st_no_mix(logits):
    probs = logits.softmax(-1)
    return st_multinomial_from(probs)


def st_multinomial_from(probs):
    drawn = torch.multinomial(probs, 1).squeeze(-1)
    return F.one_hot(drawn, probs.shape[-1]).float() + probs - probs.detach(), probs


def st_mix_not_renormalised(logits):
    probs = logits.softmax(-1) + 0.01 / logits.shape[-1]
    return st_multinomial_from(probs / probs.sum(-1, keepdim=True))[0], probs


def st_returns_probs(logits):
    probs = mixed(logits)
    return probs, probs


def st_argmax(logits):
    probs = mixed(logits)
    return F.one_hot(probs.argmax(-1), probs.shape[-1]).float() + probs - probs.detach(), probs


def st_through_logits(logits):
    probs = mixed(logits)
    sample = torch.distributions.OneHotCategorical(probs=probs).sample()
    return sample + logits - logits.detach(), probs


def st_through_unmixed_softmax(logits):
    probs, softmax = mixed(logits), logits.softmax(-1)
    sample = torch.distributions.OneHotCategorical(probs=probs).sample()
    return sample + softmax - softmax.detach(), probs


def st_sign_reversed(logits):
    probs = mixed(logits)
    sample = torch.distributions.OneHotCategorical(probs=probs).sample()
    return sample + probs.detach() - probs, probs


def st_drawn_from_softmax(logits):
    probs = mixed(logits)
    sample = torch.distributions.OneHotCategorical(logits=logits.detach() * 3).sample()  # too peaked
    return sample + probs - probs.detach(), probs


def st_drawn_before_the_mix(logits):  # probs mixed for the KL, the sample drawn from the plain softmax
    probs = mixed(logits)
    sample = torch.distributions.OneHotCategorical(probs=logits.softmax(-1)).sample()
    return sample + probs - probs.detach(), probs


def st_probs_detached(logits):  # the KL, computed from probs, would train no logits
    probs = mixed(logits)
    sample = torch.distributions.OneHotCategorical(probs=probs).sample()
    return sample + probs - probs.detach(), probs.detach()


def st_relaxed_sample(logits):  # Gumbel-softmax: not one-hot in value
    probs = mixed(logits)
    return F.gumbel_softmax(probs.log(), tau=1.0, hard=False), probs


def st_wrong_dim(logits):
    probs = 0.99 * logits.softmax(0) + 0.01 / logits.shape[-1]
    return st_multinomial_from((probs / probs.sum(-1, keepdim=True)).detach())[0], probs


@pytest.mark.parametrize("solution", [st_multinomial, st_one_hot_categorical, st_gumbel_max])
def test_right_straight_through_samples_pass(solution, capsys):
    check_straight_through_sample(solution)
    assert "Exercise 8.1 passed" in capsys.readouterr().out


@pytest.mark.parametrize("solution, words", [
    (st_no_straight_through, ["no gradient", "probs - probs.detach()"]),
    (st_no_mix, ["plain softmax", "uniform"]),
    (st_mix_not_renormalised, ["1.01", "0.99"]),
    (st_returns_probs, ["probabilities, not a sample"]),
    (st_argmax, ["argmax"]),
    (st_through_logits, ["logits.detach()", "through the probabilities"]),
    (st_through_unmixed_softmax, ["before the mix"]),
    (st_sign_reversed, ["sign reversed"]),
    (st_drawn_from_softmax, ["drawn", "times"]),
    (st_drawn_before_the_mix, ["before the mix", "160"]),
    (st_probs_detached, ["probs carries no gradient"]),
    (st_relaxed_sample, ["not one-hot"]),
    (st_wrong_dim, ["wrong dimension"]),
])
def test_straight_through_mistakes_are_named(solution, words):
    assert_names(check_straight_through_sample, solution, words)


# ---------------------------------------------------------------- 8.2 KL balancing
def balanced(posterior, prior, alpha):
    return (alpha * kl_divergence(posterior.detach(), prior).mean()
            + (1 - alpha) * kl_divergence(posterior, prior.detach()).mean())


def balanced_by_mixing(posterior, prior, alpha):  # one KL, its value kept, the gradients reweighted
    kl = kl_divergence(posterior, prior).mean()
    to_prior = kl_divergence(posterior.detach(), prior).mean()
    to_posterior = kl_divergence(posterior, prior.detach()).mean()
    return kl.detach() + alpha * (to_prior - to_prior.detach()) + (1 - alpha) * (to_posterior - to_posterior.detach())


def balanced_wrong_side(posterior, prior, alpha):
    return balanced(posterior, prior, 1 - alpha)


def balanced_no_stop_gradient(posterior, prior, alpha):
    return alpha * kl_divergence(posterior, prior).mean() + (1 - alpha) * kl_divergence(posterior, prior).mean()


def balanced_prior_detached_twice(posterior, prior, alpha):
    return (alpha * kl_divergence(posterior, prior.detach()).mean()
            + (1 - alpha) * kl_divergence(posterior, prior.detach()).mean())


def balanced_posterior_detached_twice(posterior, prior, alpha):
    return (alpha * kl_divergence(posterior.detach(), prior).mean()
            + (1 - alpha) * kl_divergence(posterior.detach(), prior).mean())


def balanced_reversed(posterior, prior, alpha):
    return balanced(prior, posterior, alpha)


def balanced_first_term_only(posterior, prior, alpha):
    return alpha * kl_divergence(posterior.detach(), prior).mean()


def balanced_per_state(posterior, prior, alpha):
    return alpha * kl_divergence(posterior.detach(), prior) + (1 - alpha) * kl_divergence(posterior, prior.detach())


def balanced_all_detached(posterior, prior, alpha):
    return balanced(posterior, prior, alpha).detach()


def balanced_std_detached(posterior, prior, alpha):  # the prior's std never learns from the KL
    prior = prior._replace(std=prior.std.detach())
    return balanced(posterior, prior, alpha)


@pytest.mark.parametrize("solution", [balanced, balanced_by_mixing])
def test_right_kl_balancing_passes(solution, capsys):
    check_balanced_kl(solution)
    assert "Exercise 8.2 passed" in capsys.readouterr().out


@pytest.mark.parametrize("solution, words", [
    (balanced_wrong_side, ["wrong side"]),
    (balanced_no_stop_gradient, ["no stop-gradients"]),
    (balanced_prior_detached_twice, ["prior is detached in both"]),
    (balanced_posterior_detached_twice, ["posterior is detached in both"]),
    (balanced_reversed, ["other direction"]),
    (balanced_first_term_only, ["second term", "missing"]),
    (balanced_per_state, ["one KL per state", "mean"]),
    (balanced_all_detached, ["no gradient"]),
    (balanced_std_detached, ["prior's std"]),
])
def test_kl_balancing_mistakes_are_named(solution, words):
    assert_names(check_balanced_kl, solution, words)


# ---------------------------------------------------------------- 8.3 the return scale
def scale_right(returns, low_high, decay):
    flat = returns.detach().flatten()
    percentiles = torch.stack([torch.quantile(flat, 0.05), torch.quantile(flat, 0.95)])
    low_high = decay * low_high + (1 - decay) * percentiles
    return torch.clamp(low_high[1] - low_high[0], min=1.0), low_high


def scale_right_python_max(returns, low_high, decay):
    percentiles = torch.quantile(returns.detach().reshape(-1), torch.tensor([0.05, 0.95]))
    low_high = low_high * decay + percentiles * (1 - decay)
    return max(1.0, float(low_high[1] - low_high[0])), low_high


def scale_std(returns, low_high, decay):
    _, low_high = scale_right(returns, low_high, decay)
    return torch.clamp(returns.detach().std(), min=1.0), low_high


def scale_no_floor(returns, low_high, decay):
    _, low_high = scale_right(returns, low_high, decay)
    return low_high[1] - low_high[0], low_high


def scale_no_ema(returns, low_high, decay):
    percentiles = torch.quantile(returns.detach().flatten(), torch.tensor([0.05, 0.95]))
    return torch.clamp(percentiles[1] - percentiles[0], min=1.0), percentiles


def scale_ema_swapped(returns, low_high, decay):
    return scale_right(returns, low_high, 1 - decay)


def scale_min_max(returns, low_high, decay):
    flat = returns.detach().flatten()
    low_high = decay * low_high + (1 - decay) * torch.stack([flat.min(), flat.max()])
    return torch.clamp(low_high[1] - low_high[0], min=1.0), low_high


def scale_percent_not_fraction(returns, low_high, decay):
    percentiles = torch.quantile(returns.detach().flatten(), torch.tensor([5.0, 95.0]))
    return scale_right(returns, low_high, decay)[0], percentiles


def scale_percentiles(low, high):
    def return_scale(returns, low_high, decay):
        quantiles = torch.quantile(returns.detach().flatten(), torch.tensor([low, high]))
        low_high = decay * low_high + (1 - decay) * quantiles
        return torch.clamp(low_high[1] - low_high[0], min=1.0), low_high
    return return_scale


def scale_per_column(returns, low_high, decay):  # percentiles of each of the N columns, averaged
    quantiles = torch.quantile(returns.detach(), torch.tensor([0.05, 0.95]), dim=0).mean(-1)
    low_high = decay * low_high + (1 - decay) * quantiles
    return torch.clamp(low_high[1] - low_high[0], min=1.0), low_high


def scale_with_gradient(returns, low_high, decay):
    flat = returns.flatten()  # not detached: the actor could shrink the spread
    low_high = decay * low_high + (1 - decay) * torch.quantile(flat, torch.tensor([0.05, 0.95]))
    return torch.clamp(low_high[1] - low_high[0], min=1.0), low_high.detach()


def scale_old_range(returns, low_high, decay):
    old = low_high.clone()
    _, low_high = scale_right(returns, low_high, decay)
    return torch.clamp(old[1] - old[0], min=1.0), low_high


@pytest.mark.parametrize("solution", [scale_right, scale_right_python_max])
def test_right_return_scales_pass(solution, capsys):
    check_return_scale(solution)
    assert "Exercise 8.3 passed" in capsys.readouterr().out


@pytest.mark.parametrize("solution, words", [
    (scale_std, ["standard deviation", "percentile"]),
    (scale_no_floor, ["no floor", "max(1"]),
    (scale_no_ema, ["EMA", "alone"]),
    (scale_ema_swapped, ["swapped"]),
    (scale_min_max, ["minimum and maximum"]),
    (scale_percent_not_fraction, ["0.05 and 0.95"]),
    (scale_percentiles(0.1, 0.9), ["10% and 90%", "0.05 and 0.95"]),
    (scale_percentiles(0.01, 0.99), ["1% and 99%"]),
    (scale_percentiles(0.25, 0.75), ["25% and 75%"]),
    (scale_per_column, ["per column", "flatten"]),
    (scale_with_gradient, ["gradient", "returns.detach()"]),
    (scale_old_range, ["OLD low_high"]),
])
def test_return_scale_mistakes_are_named(solution, words):
    assert_names(check_return_scale, solution, words)


# ---------------------------------------------------------------- 8.4 the slow critic
def slow_lerp(slow, critic, decay):
    with torch.no_grad():
        for s, c in zip(slow.parameters(), critic.parameters()):
            s.lerp_(c, 1 - decay)


def slow_copy_formula(slow, critic, decay):
    with torch.no_grad():
        for s, c in zip(slow.parameters(), critic.parameters()):
            s.copy_(decay * s + (1 - decay) * c)


def slow_swapped(slow, critic, decay):
    slow_lerp(slow, critic, 1 - decay)


def slow_hard_copy(slow, critic, decay):
    slow.load_state_dict(critic.state_dict())


def slow_rebinding(slow, critic, decay):
    for s, c in zip(slow.parameters(), critic.parameters()):
        s = decay * s + (1 - decay) * c  # noqa: F841  (a new tensor; the module is unchanged)


def slow_new_module(slow, critic, decay):
    new = copy.deepcopy(slow)
    slow_lerp(new, critic, decay)
    return new


def slow_moves_critic(slow, critic, decay):
    with torch.no_grad():
        for s, c in zip(slow.parameters(), critic.parameters()):
            c.lerp_(s, 1 - decay)


@pytest.mark.parametrize("solution", [slow_lerp, slow_copy_formula])
def test_right_slow_critic_updates_pass(solution, capsys):
    check_update_slow_critic(solution)
    assert "Exercise 8.4 passed" in capsys.readouterr().out


@pytest.mark.parametrize("solution, words", [
    (slow_swapped, ["swapped", "almost a copy"]),
    (slow_hard_copy, ["hard copy"]),
    (slow_rebinding, ["did not change", "loop variable"]),
    (slow_new_module, ["did not change", "new module"]),
    (slow_moves_critic, ["critic's weights changed"]),
])
def test_slow_critic_mistakes_are_named(solution, words):
    assert_names(check_update_slow_critic, solution, words)
