"""The Dreamer agent: world model + actor + critic, one update (algorithm 1), and acting.

`DreamerV1.update` is the whole of learning, top to bottom: the world-model loss, imagination
from every posterior state, the actor loss, the critic loss, then one Adam step per model group.
As the official code, all three losses use the parameters from before the update. How the update
is made fast (autocast, channels-last, fused Adam, compile) lives apart, in fast.py.

The pieces a learner rebuilds in the course (the encoder, decoder, RSSM, KL loss, lambda-returns,
losses and schedule) are `Parts`, passed in: the library's own by default.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import pathlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from dreamer_lib import discrete, fast
from dreamer_lib.actor_critic import (Actor, Critic, TanhNormal, compute_actor_loss, compute_critic_loss,
                                      compute_lambda_returns, discount_weights, percentile_ema)
from dreamer_lib.config import Config, resolve_device, updates_due
from dreamer_lib.networks import (ContinuePredictor, ConvDecoder, ConvEncoder, RewardPredictor, gaussian_log_prob,
                                  keras_init, preprocess, to_uint8)
from dreamer_lib.rssm import RSSM, RSSMState, kl_divergence, kl_loss, kl_loss_per_state


@dataclass(frozen=True)
class Parts:
    """The swappable pieces of DreamerV1, each with the library's as the default. The course fills
    them with a learner's own (dreamer-train --components FILE, course/components.py); `source` is
    the file they came from, which the run folder keeps a copy of."""

    encoder: Callable[..., nn.Module] = ConvEncoder  # lesson 1: (depth) -> module
    decoder: Callable[..., nn.Module] = ConvDecoder  # (feature_size, depth) -> module
    rssm: Callable[..., RSSM] = RSSM  # lesson 3: (action_size, embed_size, stoch, deter, hidden, min_std)
    kl_loss: Callable = kl_loss  # (posterior, prior, free_nats) -> (loss, mean KL)
    lambda_returns: Callable = compute_lambda_returns  # lesson 5
    discount_weights: Callable = discount_weights
    actor_loss: Callable = compute_actor_loss
    critic_loss: Callable = compute_critic_loss
    updates_due: Callable = updates_due  # lesson 6: the schedule, which the trainer follows
    source: pathlib.Path | None = None


def with_discrete_latent(parts: Parts, classes: int) -> Parts:
    """The parts with DreamerV2's discrete RSSM and its KL (discrete.py) in place of the Gaussian's."""
    if parts.rssm is not RSSM or parts.kl_loss is not kl_loss:
        raise ValueError("latent_classes > 0 trains DreamerV2's discrete RSSM and its KL, which would replace your "
                         "own rssm or kl_loss components. Train your components with --latent-classes 0 (the "
                         "paper's Gaussian latent), or leave them out of the components file.")
    return dataclasses.replace(parts, rssm=functools.partial(discrete.DiscreteRSSM, classes=classes),
                               kl_loss=discrete.kl_loss)


def with_free_nats_per_state(parts: Parts, discrete_latent: bool) -> Parts:
    """The parts with DreamerV3's free bits (rssm.kl_loss_per_state) in place of the paper's KL clamp."""
    if parts.kl_loss not in (kl_loss, discrete.kl_loss):
        raise ValueError("free_nats_per_state clamps each state's KL with the library's rssm.kl_loss_per_state, "
                         "which would replace your own kl_loss component. Train your components without "
                         "--free-nats-per-state, or leave kl_loss out of the components file.")
    divergence = discrete.categorical_kl if discrete_latent else kl_divergence
    return dataclasses.replace(parts, kl_loss=functools.partial(kl_loss_per_state, divergence=divergence))


class DreamerV1(nn.Module):
    def __init__(self, config: Config, action_size: int, device: torch.device | str | None = None,
                 parts: Parts = Parts()):
        super().__init__()
        if config.latent_classes:
            parts = with_discrete_latent(parts, config.latent_classes)
        if config.free_nats_per_state:
            parts = with_free_nats_per_state(parts, config.latent_classes > 0)
        self.config, self.action_size, self.parts = config, action_size, parts
        self.device = device if isinstance(device, torch.device) else resolve_device(device or config.device)
        c = config
        self.encoder = parts.encoder(c.cnn_depth)
        self.rssm = parts.rssm(action_size, self.encoder.embed_size, c.stoch_size, c.deter_size, c.hidden_size,
                               c.min_std)
        features = self.rssm.feature_size
        self.decoder = parts.decoder(features, c.cnn_depth)
        self.reward = RewardPredictor(features, c.dense_units)
        self.continue_predictor = ContinuePredictor(features, c.dense_units) if c.predict_continue else None
        self.actor = Actor(features, action_size, c.dense_units, c.actor_mean_scale, c.actor_init_std, c.actor_min_std)
        self.critic = Critic(features, c.dense_units)
        keras_init(self)  # the official code's initialisation (see networks.keras_init)
        # Not in DreamerV1 (config.slow_critic_decay, off in the paper preset): DreamerV2/V3 build
        # the returns from a slowly moving copy of the critic, so its regression target does not
        # chase its own latest step.
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False) if c.slow_critic_decay else None
        if c.return_normalization:  # DreamerV3's EMA of the returns' 5th and 95th percentiles
            self.register_buffer("return_range", torch.zeros(2))
        self.to(self.device)

        # One optimiser per model group, as the paper (appendix A): each steps on its own loss.
        world_model = [m for m in (self.encoder, self.rssm, self.decoder, self.reward, self.continue_predictor)
                       if m is not None]
        self.params = {"model": [p for m in world_model for p in m.parameters()],
                       "actor": list(self.actor.parameters()), "critic": list(self.critic.parameters())}
        self.optimizers = {group: fast.adam(params, self.learning_rates()[group], c.adam_eps, c, self.device)
                           for group, params in self.params.items()}

        self.precision = fast.resolve_precision(c, self.device)
        if fast.use_channels_last(c, self.device, self.precision):
            self.to(memory_format=torch.channels_last)  # conv weights; stored frames are already NHWC
        self.update = fast.maybe_compile(self.update, c, self.device)

    def autocast(self):
        return fast.autocast(self.device, self.precision)

    def learning_rates(self) -> dict[str, float]:
        c = self.config
        return {"model": c.model_lr, "actor": c.actor_lr, "critic": c.critic_lr}

    # ------------------------------------------------------------------ the world model's loss
    def world_model_loss(self, images, actions, rewards, not_terminal):
        """Equation 10 of the paper, free nats as the official code. images (T, B, 64, 64, 3) uint8,
        actions (T, B, A), rewards and not_terminal (T, B) -> (loss, posterior states, metrics)."""
        c = self.config
        obs = preprocess(images)  # (T, B, 3, 64, 64) in [-0.5, 0.5]
        embed = self.encoder(obs)  # (T, B, embed)
        start = self.rssm.get_initial_state(images.shape[1], self.device)
        posterior, prior = self.rssm.rollout_observation(embed, actions, start)  # (T, B, ...) each
        features = posterior.features  # (T, B, stoch + deter)
        image_loss = -gaussian_log_prob(self.decoder(features), obs, event_dims=3).mean()
        reward_loss = -gaussian_log_prob(self.reward(features), rewards * c.reward_scale).mean()
        if c.kl_balance is None:
            kl_clamped, kl = self.parts.kl_loss(posterior, prior, c.free_nats)
        else:  # Not in DreamerV1 (off in the paper preset): DreamerV2's KL balancing, the same KL
            # twice through stop-gradients, so that the prior learns faster (alpha) towards the
            # posterior than the posterior is pulled towards the prior (1 - alpha).
            dynamics, kl = self.parts.kl_loss(posterior.detach(), prior, c.free_nats)
            representation, _ = self.parts.kl_loss(posterior, prior.detach(), c.free_nats)
            kl_clamped = c.kl_balance * dynamics + (1 - c.kl_balance) * representation
        loss = image_loss + reward_loss + c.kl_scale * kl_clamped
        metrics = {"image_loss": image_loss, "reward_loss": reward_loss, "kl": kl}
        if isinstance(prior, RSSMState):  # the Gaussian's spreads (a discrete latent has none)
            metrics.update(prior_std=prior.std.mean(), posterior_std=posterior.std.mean())
        if self.continue_predictor is not None:
            # As the official code, the target folds in gamma: the head predicts gamma * not_terminal.
            logits = self.continue_predictor(features)
            continue_loss = nn.functional.binary_cross_entropy_with_logits(logits, c.gamma * not_terminal)
            loss = loss + c.continue_scale * continue_loss
            metrics["continue_loss"] = continue_loss
        metrics["model_loss"] = loss
        return loss, posterior, metrics

    # ------------------------------------------------------------------ behaviour learning
    def behaviour_losses(self, posterior):
        """Section 3: imagine H steps ahead of every posterior state with the actor, then the actor
        loss (eq. 7) and the critic loss (eq. 8) on the lambda-returns (eq. 6) -> (actor loss,
        critic loss, metrics)."""
        c, parts = self.config, self.parts
        # Detached: behaviour learning does not move the world model's representation. With a
        # continue head, the official code drops each window's last state (it may be terminal).
        starts = posterior.at(slice(0, -1)) if self.continue_predictor is not None else posterior
        # Not in DreamerV1 (config.imagine_every, 1 = every state): neighbouring states of a window
        # are much alike, and imagination is about half of an update's cost on the CPU.
        starts = starts.at(slice(None, None, c.imagine_every))
        start = starts.detach().reshape(-1)  # (N = T * B, or fewer, ...)
        imagined, _, policies = self.rssm.rollout_imagination(start, self.actor, c.horizon)  # (H, N, ...)
        features = imagined.features  # (H, N, stoch + deter)
        reward = self.reward(features)  # (H, N), in the scaled units the reward head learned
        value = self.critic(features)  # (H, N)
        target_value = self.slow_critic(features) if self.slow_critic is not None else value  # builds the returns
        if self.continue_predictor is not None:
            discount = torch.sigmoid(self.continue_predictor(features))  # (H, N): gamma * P(continue)
        else:
            discount = torch.full_like(reward, c.gamma)
        # V_lambda (eq. 6) for steps 0..H-2, bootstrapped with the last value (as the official code).
        returns = parts.lambda_returns(reward[:-1], target_value[:-1], discount[:-1], target_value[-1],
                                       c.lambda_)  # (H-1, N)

        # Actor loss (eq. 7): maximise the returns; the gradient flows back through the learned
        # dynamics into the actions.
        scale = self.return_scale(returns)  # 1 in DreamerV1
        actor_loss = parts.actor_loss(returns / scale, discount[:-1])
        # Deviation, off in the paper preset (config.actor_entropy): + eta * H(pi) at the same
        # imagined states, weighted like the returns. Without the bonus, only logged (no graph).
        # policies[t] acted in the state before imagined[t]: policies[1:] are states 0..H-2's.
        with torch.set_grad_enabled(c.actor_entropy != 0 and torch.is_grad_enabled()):
            entropy = TanhNormal.stack(policies[1:]).entropy(samples=1)  # (H-1, N)
        if c.actor_entropy:
            actor_loss = actor_loss - c.actor_entropy * (parts.discount_weights(discount[:-1]) * entropy).mean()

        # Critic loss (eq. 8): regress v(s_t) on the detached returns. It reuses the values above:
        # its gradient is taken w.r.t. the critic's parameters only (update), the same as on
        # detached states, without a second pass through the critic.
        critic_loss = parts.critic_loss(value[:-1], returns, discount[:-1])
        metrics = {"imagined_return": returns[0].mean(), "value": value.mean(), "actor_entropy": entropy.mean()}
        if c.return_normalization:
            metrics["return_scale"] = scale
        return actor_loss, critic_loss, metrics

    def return_scale(self, returns: torch.Tensor) -> torch.Tensor | float:
        """What the actor's returns are divided by: 1 in DreamerV1. With return_normalization
        (DreamerV3), max(1, high - low), where low and high are EMAs (decay 0.99) of the 5th and
        95th percentiles of the returns, updated here: large returns are scaled down to a range of
        about 1, small ones are not blown up, so the entropy bonus weighs the same on any task."""
        if not self.config.return_normalization:
            return 1.0
        if torch.is_grad_enabled():  # an update, not an inspection: move the statistics
            self.return_range.copy_(percentile_ema(returns, self.return_range))
        return torch.clamp(self.return_range[1] - self.return_range[0], min=1.0)

    # ------------------------------------------------------------------ one update
    def update(self, batch: dict) -> dict[str, torch.Tensor]:
        """One training step on B sequences of length T. Returns metrics as device tensors (no
        host sync) and leaves each group's clipped gradient in its parameters' .grad."""
        with self.autocast():
            model_loss, posterior, metrics = self.world_model_loss(*self.to_batch(batch))
            actor_loss, critic_loss, behaviour = self.behaviour_losses(posterior)
        losses = {"model": model_loss, "actor": actor_loss, "critic": critic_loss}
        for group, loss in losses.items():  # each on its own loss's gradient, with a global-norm clip
            metrics[f"{group}_grad_norm"] = self._clipped_gradient(group, loss)
        for optimizer in self.optimizers.values():
            optimizer.step()
        if self.slow_critic is not None:  # slow <- decay * slow + (1 - decay) * critic
            with torch.no_grad():
                for slow, critic in zip(self.slow_critic.parameters(), self.critic.parameters()):
                    slow.lerp_(critic, 1 - self.config.slow_critic_decay)
        metrics.update(actor_loss=actor_loss, critic_loss=critic_loss, **behaviour)
        return {k: v.detach() for k, v in metrics.items()}

    def update_world_model(self, batch: dict) -> dict[str, torch.Tensor]:
        """The world model's part of `update` alone: train only the world model (lessons 4, 5, 7)."""
        with self.autocast():
            loss, _, metrics = self.world_model_loss(*self.to_batch(batch))
        metrics["model_grad_norm"] = self._clipped_gradient("model", loss)
        self.optimizers["model"].step()
        return {k: v.detach() for k, v in metrics.items()}

    def _clipped_gradient(self, group: str, loss: torch.Tensor) -> torch.Tensor:
        # autograd.grad computes only this group's gradients: the actor loss backpropagates
        # through the world model and critic without writing into their .grad. The losses share
        # parts of one graph (the critic's loss reuses the values the returns were built from), so
        # each call keeps it, whatever the order; it is freed when the update returns.
        params = self.params[group]
        for param, grad in zip(params, torch.autograd.grad(loss, params, retain_graph=True)):
            param.grad = grad
        return nn.utils.clip_grad_norm_(params, self.config.grad_clip)

    def to_batch(self, batch: dict) -> tuple[torch.Tensor, ...]:
        """Move a sampled numpy batch to the device once; images stay uint8 until there."""
        move = lambda key: torch.as_tensor(batch[key]).to(self.device, non_blocking=True)  # noqa: E731
        return move("image"), move("action"), move("reward"), move("not_terminal")

    # ------------------------------------------------------------------ acting
    def initial_policy_state(self, batch_size: int = 1):
        return (self.rssm.get_initial_state(batch_size, self.device),
                torch.zeros(batch_size, self.action_size, device=self.device))

    def observe(self, state: RSSMState, prev_action: torch.Tensor, image) -> RSSMState:
        """Filter one frame into the latent state: h_t from (state, a_{t-1}), then the posterior's
        z_t from h_t and the frame. image (N, 64, 64, 3) uint8, prev_action (N, A)."""
        embed = self.encoder(preprocess(torch.as_tensor(image, device=self.device)))  # (N, embed)
        posterior, _ = self.rssm.obs_step(state, prev_action, embed)
        return posterior

    @torch.no_grad()
    def policy(self, image: np.ndarray, state, explore: bool):
        """One step of acting: filter the new frame into the latent state, then act.

        image (64, 64, 3) uint8 (or (N, 64, 64, 3)); state from `initial_policy_state` or the
        previous call. explore=True samples and adds Gaussian noise of std expl_noise (clipped
        to [-1, 1]), as the paper; explore=False takes the actor's mode (evaluation)."""
        latent, prev_action = state
        single = np.ndim(image) == 3
        latent = self.observe(latent, prev_action, image[None] if single else image)
        dist = self.actor(latent.features)
        if explore:
            action = dist.rsample()
            action = (action + self.config.expl_noise * torch.randn_like(action)).clamp(-1, 1)
        else:
            action = dist.mode()
        out = action.cpu().numpy()
        return (out[0] if single else out), (latent, action)

    # ------------------------------------------------------------------ inspection
    @torch.no_grad()
    def open_loop(self, images: torch.Tensor, actions: torch.Tensor, context: int = 5) -> torch.Tensor:
        """The official code's "openl" summary: filter `context` real frames with the posterior,
        then predict the rest open-loop with the prior and the real actions.
        images (T, B, 64, 64, 3) uint8, actions (T, B, A) -> model frames (T, B, 64, 64, 3) uint8."""
        embed = self.encoder(preprocess(images[:context]))
        start = self.rssm.get_initial_state(images.shape[1], self.device)
        posterior, _ = self.rssm.rollout_observation(embed, actions[:context], start)
        prior = self.rssm.rollout_prior(actions[context:], posterior.at(-1))
        frames = torch.cat([self.decoder(posterior.features), self.decoder(prior.features)])
        return to_uint8(frames)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict:
        return {"model": self.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}

    def load_checkpoint(self, checkpoint: dict) -> None:
        if not isinstance(checkpoint, dict) or not {"model", "optimizers"} <= set(checkpoint):
            raise ValueError("This file is not a dreamer_lib agent checkpoint (it lacks the 'model' and "
                             "'optimizers' entries). Point at a checkpoint.pt that dreamer-train wrote.")
        try:
            self.load_state_dict(checkpoint["model"])
        except RuntimeError as error:
            raise ValueError(
                "This checkpoint was written by a model of another size (a different preset or "
                "architecture setting), so its weights do not fit this one. Load it with the "
                "config.json of its own run folder (dreamer-train --resume RUN does).\n"
                f"PyTorch said: {str(error).splitlines()[0]}") from None
        for group, optimizer in self.optimizers.items():
            # A copy: load_state_dict keeps the given state tensors, which Adam then updates in
            # place; two agents loaded from one checkpoint dict would otherwise share their state.
            optimizer.load_state_dict(copy.deepcopy(checkpoint["optimizers"][group]))
            # The optimiser's state dict carries the settings it was saved with; this run's config
            # decides (a resume may change them on purpose).
            for param_group in optimizer.param_groups:
                param_group.update(lr=self.learning_rates()[group], eps=self.config.adam_eps)
