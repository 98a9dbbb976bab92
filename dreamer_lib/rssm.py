"""The recurrent state-space model (RSSM), section 2 and appendix A of the paper; PlaNet's model.

    deterministic   h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}])     (deter, 200)
    prior           z_t ~ p(z_t | h_t)                          (stoch, 30, diagonal Gaussian)
    posterior       z_t ~ q(z_t | h_t, e_t),  e_t = encoder(o_t)

Convention for the whole library: sequences are TIME-MAJOR, (T, B, ...). An episode stores at
index t the observation o_t, the action a_{t-1} that led to it (zeros at the reset step) and the
reward r_t received on arriving there, so `rollout_observation` pairs actions[t] with embeds[t].
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class RSSMState(NamedTuple):
    mean: torch.Tensor  # (..., stoch)
    std: torch.Tensor  # (..., stoch)
    stoch: torch.Tensor  # (..., stoch) a sample, reparameterised
    deter: torch.Tensor  # (..., deter)

    @property
    def features(self) -> torch.Tensor:
        """[z, h]: what the decoder, reward head, actor and critic see."""
        return torch.cat([self.stoch, self.deter], -1)

    def detach(self) -> "RSSMState":
        return type(self)(*(x.detach() for x in self))

    def reshape(self, *shape) -> "RSSMState":
        return type(self)(*(x.reshape(*shape, x.shape[-1]) for x in self))

    def at(self, index) -> "RSSMState":
        """Index the leading (time) dimension of every field: `states.at(-1)`, `states.at(slice(0, -1))`."""
        return type(self)(*(x[index] for x in self))


def stack_states(states: list[RSSMState]) -> RSSMState:
    return type(states[0])(*(torch.stack(xs) for xs in zip(*states)))


class RSSM(nn.Module):
    def __init__(self, action_size: int, embed_size: int, stoch_size: int = 30, deter_size: int = 200,
                 hidden_size: int = 200, min_std: float = 0.1):
        super().__init__()
        self.stoch_size, self.deter_size, self.min_std = stoch_size, deter_size, min_std
        self.feature_size = stoch_size + deter_size
        self.input_layer = nn.Linear(stoch_size + action_size, hidden_size)
        self.gru = nn.GRUCell(hidden_size, deter_size)
        self.prior_hidden = nn.Linear(deter_size, hidden_size)
        self.prior_stats = nn.Linear(hidden_size, 2 * stoch_size)
        self.posterior_hidden = nn.Linear(deter_size + embed_size, hidden_size)
        self.posterior_stats = nn.Linear(hidden_size, 2 * stoch_size)

    def get_initial_state(self, batch_size: int, device=None) -> RSSMState:
        zeros = lambda size: torch.zeros(batch_size, size, device=device)  # noqa: E731
        return RSSMState(zeros(self.stoch_size), zeros(self.stoch_size), zeros(self.stoch_size),
                         zeros(self.deter_size))

    def _distribution(self, stats: torch.Tensor, deter: torch.Tensor) -> RSSMState:
        # Distributions stay in fp32 even under bf16 autocast.
        mean, std = stats.float().chunk(2, -1)
        std = F.softplus(std) + self.min_std
        stoch = mean + std * torch.randn_like(std)  # reparameterisation: gradients reach mean, std
        return RSSMState(mean, std, stoch, deter)

    def prior(self, prev_state: RSSMState, prev_action: torch.Tensor) -> RSSMState:
        """One imagination step ("img_step"): h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}]), z_t ~ p(z_t | h_t)."""
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x, prev_state.deter).float()  # (B, deter)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)

    def posterior(self, prior: RSSMState, embed: torch.Tensor) -> RSSMState:
        """z_t ~ q(z_t | h_t, e_t): same h_t as the prior, but it also sees the observation."""
        x = F.elu(self.posterior_hidden(torch.cat([prior.deter, embed], -1)))
        return self._distribution(self.posterior_stats(x), prior.deter)

    def obs_step(self, prev_state: RSSMState, prev_action: torch.Tensor, embed: torch.Tensor):
        prior = self.prior(prev_state, prev_action)
        return self.posterior(prior, embed), prior

    def rollout_observation(self, embeds: torch.Tensor, actions: torch.Tensor, state: RSSMState):
        """Filter a sequence: embeds (T, B, embed), actions (T, B, action) -> posteriors and priors,
        each an RSSMState of (T, B, ...) tensors. Used to train the world model."""
        posteriors, priors = [], []
        for t in range(embeds.shape[0]):
            state, prior = self.obs_step(state, actions[t], embeds[t])
            posteriors.append(state)
            priors.append(prior)
        return stack_states(posteriors), stack_states(priors)

    def rollout_imagination(self, start: RSSMState, actor: nn.Module, horizon: int):
        """Imagine `horizon` steps ahead of each start state with actions from the policy.

        start: (N, ...) states -> (states, actions, policies): the imagined prior states
        (horizon, N, ...), not including the start (as the official code), the actions
        (horizon, N, A), and the list of the policy's distributions they were drawn from, where
        actions[t] ~ policies[t] is the one taken in the state before states[t]. The actor's input
        is detached, so the actor is trained only through the dynamics' gradient of the return
        (section 3), not by moving its own input."""
        state, states, actions, policies = start, [], [], []
        for _ in range(horizon):
            policies.append(actor(state.features.detach()))
            action = policies[-1].rsample()  # (N, A)
            state = self.prior(state, action)
            states.append(state)
            actions.append(action)
        return stack_states(states), torch.stack(actions), policies

    def rollout_prior(self, actions: torch.Tensor, state: RSSMState) -> RSSMState:
        """Open-loop prediction with given actions (T, B, action): the prior alone, no observations."""
        states = []
        for t in range(actions.shape[0]):
            state = self.prior(state, actions[t])
            states.append(state)
        return stack_states(states)


def kl_divergence(q: RSSMState, p: RSSMState) -> torch.Tensor:
    """KL(q || p) between diagonal Gaussians, summed over the stoch dimensions: (...) per state."""
    var_ratio = (q.std / p.std).pow(2)
    mean_term = ((q.mean - p.mean) / p.std).pow(2)
    return 0.5 * (var_ratio + mean_term - 1 - var_ratio.log()).sum(-1)


def kl_loss(posterior: RSSMState, prior: RSSMState, free_nats: float = 3.0):
    """max(mean KL(posterior || prior), free_nats), and the unclamped mean KL for logging.

    As the official TF2 code: free nats clamp the KL averaged over batch and time, so once the
    average drops below 3 nats the KL term gives no gradient at all (the TF1 code clamped each
    element instead, which keeps a gradient for the states above the line)."""
    kl = kl_divergence(posterior, prior).mean()
    return torch.clamp(kl, min=free_nats), kl


def kl_loss_per_state(posterior, prior, free_nats: float = 1.0, divergence=kl_divergence):
    """mean over states of max(KL(posterior || prior), free_nats), and the unclamped mean KL.

    Not in DreamerV1 (config.free_nats_per_state, off in every preset): DreamerV3's free bits
    (Hafner et al. 2023, section 3, 1 nat) clamp each state's KL, summed over its latent, before
    the mean. A state already explained by its prior gives no gradient, while the states above
    the line keep theirs; the paper's clamp of the mean stops the gradient for all or for none.
    divergence: the per-state KL of the latent (discrete.categorical_kl for the discrete one)."""
    kl = divergence(posterior, prior)
    return torch.clamp(kl, min=free_nats).mean(), kl.mean()
