"""Behaviour learning in imagination (section 3 of the paper): actor, critic, lambda-returns.

All sequence tensors here are time-major: (H, N) with H imagined steps from N start states.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dreamer_lib.networks import DenseHead


class TanhNormal:
    """A diagonal Gaussian squashed by tanh into (-1, 1): the paper's action distribution.

    The actor is trained by backpropagating the return through `rsample` (reparameterisation),
    so no log-prob enters the actor loss; `log_prob`, `mode` and `entropy` serve evaluation and
    logging."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.normal = torch.distributions.Normal(mean, std)

    @staticmethod
    def stack(dists: list[TanhNormal]) -> TanhNormal:
        """One distribution over a new leading (time) dimension from per-step ones."""
        return TanhNormal(torch.stack([d.normal.loc for d in dists]), torch.stack([d.normal.scale for d in dists]))

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return torch.tanh(self.normal.rsample(sample_shape))

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """Change of variables: log p(a) = log N(atanh a) - sum log(1 - a^2), summed over dims.

        The official code clips a to +-0.99999997 before atanh so that a saturated action still
        has a finite log-prob; in fp32 that is the largest float below 1."""
        action = action.float().clamp(-0.99999997, 0.99999997)
        return self._log_prob_pre_tanh(torch.atanh(action))

    def _log_prob_pre_tanh(self, x: torch.Tensor) -> torch.Tensor:
        # log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x)), stable for large |x|
        log_det = 2 * (math.log(2) - x - F.softplus(-2 * x))
        return (self.normal.log_prob(x) - log_det).sum(-1)

    def mode(self, samples: int = 100) -> torch.Tensor:
        """The most likely of `samples` draws, as the official code (tanh(mean) is not the mode of
        a squashed Gaussian with a large std: the mass piles up near +-1)."""
        draws = self.rsample((samples,))  # (S, ..., A)
        best = self.log_prob(draws).argmax(0)  # (...)
        index = best[None, ..., None].expand(1, *draws.shape[1:])
        return draws.gather(0, index)[0]

    def entropy(self, samples: int = 100) -> torch.Tensor:
        """Monte-Carlo estimate -E[log p(a)] (the squashed Gaussian has no closed form), with
        gradients: evaluated on the pre-tanh draws, so it stays exact where tanh saturates.

        Its log(1 - a^2) part is what makes an entropy bonus pull a saturated actor back: at a
        pre-tanh mean x its gradient is -2 tanh(x), which does not vanish at the edges."""
        return -self._log_prob_pre_tanh(self.normal.rsample((samples,))).mean(0)


class Actor(DenseHead):
    """pi(a_t | s_t): four ELU layers of 400, then a tanh-transformed Gaussian.

    mean = 5 tanh(m / 5) keeps the pre-tanh mean in [-5, 5]; std = softplus(s + c) + 1e-4 with
    c = log(e^5 - 1), so a freshly initialised actor (s ~ 0) starts with std ~ 5: wide exploration
    whose tanh is close to uniform-at-the-edges. Values from the official code."""

    def __init__(self, feature_size: int, action_size: int, units: int = 400, mean_scale: float = 5.0,
                 init_std: float = 5.0, min_std: float = 1e-4):
        super().__init__(feature_size, 2 * action_size, layers=4, units=units)
        self.mean_scale, self.min_std = mean_scale, min_std
        self.raw_init_std = math.log(math.exp(init_std) - 1)

    def forward(self, features: torch.Tensor) -> TanhNormal:
        mean, std = super().forward(features).float().chunk(2, -1)
        mean = self.mean_scale * torch.tanh(mean / self.mean_scale)
        std = F.softplus(std + self.raw_init_std) + self.min_std
        return TanhNormal(mean, std)


class Critic(DenseHead):
    """v(s_t): three ELU layers of 400 -> the mean of a unit-variance Gaussian over the return."""

    def __init__(self, feature_size: int, units: int = 400):
        super().__init__(feature_size, 1, layers=3, units=units)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features).squeeze(-1).float()


def compute_lambda_returns(rewards, values, discounts, bootstrap, lambda_: float = 0.95):
    """V_lambda of equation 6, computed backwards in time. All (H, N) except bootstrap (N,).

        R_t = r_t + d_t * ((1 - lambda) * v_{t+1} + lambda * R_{t+1}),   v_H = R_H = bootstrap

    lambda = 0 gives one-step TD targets r_t + d_t v_{t+1}; lambda = 1 the discounted return
    of the imagined rewards, bootstrapped with the last value."""
    next_values = torch.cat([values[1:], bootstrap[None]], 0)  # v_{t+1}
    inputs = rewards + discounts * (1 - lambda_) * next_values
    returns, last = [], bootstrap
    for t in reversed(range(rewards.shape[0])):
        last = inputs[t] + discounts[t] * lambda_ * last
        returns.append(last)
    return torch.stack(returns[::-1])


def discount_weights(discounts: torch.Tensor) -> torch.Tensor:
    """Weight of step t in the losses: the probability of reaching it, prod_{k<t} d_k (1 at t=0).
    (H, N) -> (H, N), cumulative, without gradient (as the official code)."""
    shifted = torch.cat([torch.ones_like(discounts[:1]), discounts[:-1]], 0)
    return torch.cumprod(shifted, 0).detach()


def compute_actor_loss(lambda_returns: torch.Tensor, discounts: torch.Tensor) -> torch.Tensor:
    """Maximise the discount-weighted lambda-returns. The gradient flows from the returns back
    through the reward and value predictions, the imagined states and the sampled actions into
    the actor: analytic gradients through the learned dynamics (section 3, eq. 7)."""
    return -(discount_weights(discounts) * lambda_returns).mean()


def compute_critic_loss(values: torch.Tensor, lambda_returns: torch.Tensor, discounts: torch.Tensor):
    """Regress v(s_t) on the lambda-returns (eq. 8): the negative log-likelihood of a unit-variance
    Gaussian, 0.5 (v - R)^2 without its constant. The target is detached, so the critic does not
    move its own target. Take this loss's gradient w.r.t. the critic's parameters only (as
    DreamerV1.update does) or compute `values` on detached features: either way the critic loss
    does not reshape the world model's states."""
    return (discount_weights(discounts) * 0.5 * (values - lambda_returns.detach()).pow(2)).mean()


def percentile_ema(returns: torch.Tensor, low_high: torch.Tensor, decay: float = 0.99) -> torch.Tensor:
    """DreamerV3's return statistics: [low, high] moved towards the 5th and 95th percentiles of
    this batch's returns, decay * low_high + (1 - decay) * [P5, P95], without gradient."""
    fractions = torch.tensor([0.05, 0.95], device=returns.device)
    return decay * low_high + (1 - decay) * torch.quantile(returns.detach().float().flatten(), fractions)
