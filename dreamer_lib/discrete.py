"""DreamerV2's discrete latent (Hafner et al. 2021, "Mastering Atari with Discrete World Models",
section 2): z_t is 32 categorical variables of 32 classes each instead of a diagonal Gaussian.
Not in DreamerV1: config.latent_classes > 0 switches it on (0, the paper, keeps the Gaussian).

    sample   one class per variable, a one-hot vector; flattened, z_t has variables x classes entries
    gradient straight-through: the forward pass uses the sample, the backward pass the probabilities'
    mix     1% uniform (DreamerV3): no class's probability is ever 0, so the KL stays finite

The RSSM's steps (the GRU, which layers read what, the rollouts) are rssm.RSSM's; only the
distribution its stats layers describe changes (`_distribution`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dreamer_lib.rssm import RSSM, RSSMState


UNIFORM_MIX = 0.01  # DreamerV3's share of the uniform distribution in each categorical


def mixed_probs(logits: torch.Tensor) -> torch.Tensor:
    """The softmax over the last dimension (the classes) with 1% of the uniform mixed in."""
    return (1 - UNIFORM_MIX) * logits.softmax(-1) + UNIFORM_MIX / logits.shape[-1]


class DiscreteState(NamedTuple):
    logits: torch.Tensor  # (..., variables * classes) log-probabilities, after the uniform mix
    stoch: torch.Tensor  # (..., variables * classes) one-hot samples, straight-through
    deter: torch.Tensor  # (..., deter)

    # What the rest of the library does with a state reads only stoch and deter: the same as RSSMState's.
    features = RSSMState.features
    detach = RSSMState.detach
    reshape = RSSMState.reshape
    at = RSSMState.at


class DiscreteRSSM(RSSM):
    def __init__(self, action_size: int, embed_size: int, stoch_size: int = 32, deter_size: int = 200,
                 hidden_size: int = 200, min_std: float = 0.1, classes: int = 32):
        """stoch_size: the number of categorical variables; min_std is unused (no std here)."""
        super().__init__(action_size, embed_size, stoch_size * classes, deter_size, hidden_size, min_std)
        self.variables, self.classes = stoch_size, classes
        # One logit per class (the Gaussian's layers give a mean and a std per dimension).
        self.prior_stats = nn.Linear(hidden_size, stoch_size * classes)
        self.posterior_stats = nn.Linear(hidden_size, stoch_size * classes)

    def get_initial_state(self, batch_size: int, device=None) -> DiscreteState:
        uniform = torch.full((batch_size, self.stoch_size), -math.log(self.classes), device=device)
        return DiscreteState(uniform, torch.zeros(batch_size, self.stoch_size, device=device),
                             torch.zeros(batch_size, self.deter_size, device=device))

    def _distribution(self, logits: torch.Tensor, deter: torch.Tensor) -> DiscreteState:
        logits = logits.float().unflatten(-1, (self.variables, self.classes))  # (..., variables, classes)
        probs = mixed_probs(logits)
        drawn = torch.multinomial(probs.reshape(-1, self.classes), 1).reshape(probs.shape[:-1])
        sample = F.one_hot(drawn, self.classes).float()
        stoch = sample + probs - probs.detach()  # the value of the sample, the gradient of the probabilities
        return DiscreteState(probs.log().flatten(-2), stoch.flatten(-2), deter)


def categorical_kl(q: DiscreteState, p: DiscreteState) -> torch.Tensor:
    """KL(q || p) summed over the variables (each a categorical): sum_k q_k (log q_k - log p_k), (...)."""
    return (q.logits.exp() * (q.logits - p.logits)).sum(-1)


def kl_loss(posterior: DiscreteState, prior: DiscreteState, free_nats: float = 3.0):
    """rssm.kl_loss for the discrete latent: max(mean KL, free_nats), and the mean KL for logging."""
    kl = categorical_kl(posterior, prior).mean()
    return torch.clamp(kl, min=free_nats), kl
