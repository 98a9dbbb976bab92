"""The Dreamer agent: world model + actor + critic, their losses, one update, and acting.

One update (algorithm 1 of the paper) on a batch of B sequences of length T:
  1. world model: filter the sequences with the RSSM (posteriors), reconstruct images and
     rewards, KL(posterior || prior) with free nats;
  2. behaviour: from every posterior state (T * B of them, detached) imagine H steps with the
     actor, predict rewards and values, lambda-returns; actor loss through the dynamics, critic
     loss on detached targets;
  3. one Adam step per model group, each with its own global-norm gradient clip.
As the official code, all three losses are computed with the parameters from before the
update, then the three optimisers step.

The fast path (config.fast, default on) computes exactly these losses with: bf16 autocast where
the hardware has bf16 units (distributions and losses stay fp32), channels-last convolutions,
fused Adam on CUDA, and torch.compile of the two loss functions on CUDA. tests/test_fast_path.py
checks it against the plain fp32 path.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch
from torch import nn

from dreamer_lib.actor_critic import (Actor, Critic, compute_actor_loss, compute_critic_loss, compute_lambda_returns,
                                      discount_weights)
from dreamer_lib.config import Config, resolve_device, resolve_precision
from dreamer_lib.networks import (ContinuePredictor, ConvDecoder, ConvEncoder, RewardPredictor,
                                  gaussian_log_prob, keras_init, preprocess, to_uint8)
from dreamer_lib.rssm import RSSM, RSSMState, kl_loss


class DreamerV1(nn.Module):
    def __init__(self, config: Config, action_size: int, device: torch.device | str | None = None):
        super().__init__()
        self.config, self.action_size = config, action_size
        self.device = device if isinstance(device, torch.device) else resolve_device(device or config.device)
        c = config
        self.encoder = ConvEncoder(c.cnn_depth)
        self.rssm = RSSM(action_size, self.encoder.embed_size, c.stoch_size, c.deter_size, c.hidden_size, c.min_std)
        features = self.rssm.feature_size
        self.decoder = ConvDecoder(features, c.cnn_depth)
        self.reward = RewardPredictor(features, c.dense_units)
        self.pcont = ContinuePredictor(features, c.dense_units) if c.use_continue else None
        self.actor = Actor(features, action_size, c.dense_units, c.actor_mean_scale, c.actor_init_std, c.actor_min_std)
        self.critic = Critic(features, c.dense_units)
        keras_init(self)  # the official code's initialisation (see networks.keras_init)
        self.to(self.device)

        self.precision = resolve_precision(c, self.device)
        if c.fast:
            self.to(memory_format=torch.channels_last)  # conv weights; stored frames are already NHWC
        world_model = [m for m in (self.encoder, self.rssm, self.decoder, self.reward, self.pcont) if m is not None]
        self.params = {"model": [p for m in world_model for p in m.parameters()],
                       "actor": list(self.actor.parameters()), "critic": list(self.critic.parameters())}
        lrs = {"model": c.model_lr, "actor": c.actor_lr, "critic": c.critic_lr}
        fused = dict(fused=True) if c.fast and self.device.type == "cuda" else {}
        self.optimizers = {group: torch.optim.Adam(params, lr=lrs[group], eps=c.adam_eps, **fused)
                           for group, params in self.params.items()}

        self._world_model_loss, self._behavior_losses = self.world_model_loss, self.behavior_losses
        use_compile = c.compile == "on" or (c.compile == "auto" and c.fast and self.device.type == "cuda")
        if use_compile:
            self._world_model_loss = _compiled_or_eager(self.world_model_loss)
            self._behavior_losses = _compiled_or_eager(self.behavior_losses)

    def autocast(self):
        if self.precision == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision)

    # ------------------------------------------------------------------ losses
    def world_model_loss(self, images, actions, rewards, discounts):
        """images (T, B, 64, 64, 3) uint8, actions (T, B, A), rewards and discounts (T, B)."""
        c = self.config
        obs = preprocess(images)  # (T, B, 3, 64, 64) in [-0.5, 0.5]
        embed = self.encoder(obs)  # (T, B, embed)
        start = self.rssm.get_initial_state(images.shape[1], self.device)
        posterior, prior = self.rssm.rollout_observation(embed, actions, start)
        features = posterior.features  # (T, B, stoch + deter)
        image_loss = -gaussian_log_prob(self.decoder(features), obs, event_dims=3).mean()
        reward_loss = -gaussian_log_prob(self.reward(features), rewards * c.reward_scale).mean()
        kl_clamped, kl = kl_loss(posterior, prior, c.free_nats)
        loss = image_loss + reward_loss + c.kl_scale * kl_clamped
        metrics = {"image_loss": image_loss, "reward_loss": reward_loss, "kl": kl,
                   "prior_std": prior.std.mean(), "posterior_std": posterior.std.mean()}
        if self.pcont is not None:
            # As the official code, the target folds in gamma: pcont predicts gamma * (not terminal).
            target = c.gamma * discounts
            continue_loss = nn.functional.binary_cross_entropy_with_logits(self.pcont(features), target)
            loss = loss + c.continue_scale * continue_loss
            metrics["continue_loss"] = continue_loss
        metrics["model_loss"] = loss
        return loss, posterior, metrics

    def behavior_losses(self, posterior: RSSMState):
        """Actor and critic losses from H-step imaginations started at every posterior state."""
        c = self.config
        start = posterior.detach().reshape(-1)  # (T * B, ...): no gradient into the world model here
        imagined = self.rssm.rollout_imagination(start, self.actor, c.horizon)  # (H, N, ...)
        features = imagined.features
        rewards = self.reward(features)  # (H, N), in the scaled units the reward head learned
        values = self.critic(features)  # (H, N)
        if self.pcont is not None:
            discounts = torch.sigmoid(self.pcont(features))
        else:
            discounts = torch.full_like(rewards, c.gamma)
        # As the official code: returns for steps 0..H-2, bootstrapped with the last value.
        returns = compute_lambda_returns(rewards[:-1], values[:-1], discounts[:-1], values[-1], c.lambda_)
        actor_loss = compute_actor_loss(returns, discounts[:-1])
        # Deviation, off in the paper preset (config.actor_entropy): maximise returns + eta * H(pi),
        # with the entropy of the policy at the same imagined states, weighted like the returns.
        entropy = self.actor(features[:-1].detach()).entropy(samples=1)  # (H - 1, N)
        if c.actor_entropy:
            actor_loss = actor_loss - c.actor_entropy * (discount_weights(discounts[:-1]) * entropy).mean()
        critic_loss = compute_critic_loss(self.critic(features[:-1].detach()), returns, discounts[:-1])
        metrics = {"actor_loss": actor_loss, "critic_loss": critic_loss, "imagined_return": returns[0].mean(),
                   "value": values.mean(), "actor_entropy": entropy.mean()}
        return actor_loss, critic_loss, metrics

    # ------------------------------------------------------------------ update
    def to_batch(self, batch: dict) -> tuple[torch.Tensor, ...]:
        """Move a sampled numpy batch to the device once; images stay uint8 until there."""
        move = lambda key: torch.as_tensor(batch[key]).to(self.device, non_blocking=True)  # noqa: E731
        return move("image"), move("action"), move("reward"), move("discount")

    def compute_gradients(self, batch: dict) -> dict[str, torch.Tensor]:
        """All three losses with the current parameters; leaves clipped gradients in .grad."""
        images, actions, rewards, discounts = self.to_batch(batch)
        with self.autocast():
            model_loss, posterior, metrics = self._world_model_loss(images, actions, rewards, discounts)
        metrics["model_grad_norm"] = self._set_gradients(model_loss, "model")
        with self.autocast():
            actor_loss, critic_loss, behavior_metrics = self._behavior_losses(posterior.detach())
        metrics.update(behavior_metrics)
        metrics["actor_grad_norm"] = self._set_gradients(actor_loss, "actor")
        metrics["critic_grad_norm"] = self._set_gradients(critic_loss, "critic")
        return metrics

    def _set_gradients(self, loss: torch.Tensor, group: str) -> torch.Tensor:
        # autograd.grad only computes this group's gradients: the actor loss backpropagates
        # through the world model and critic without writing into their .grad.
        params = self.params[group]
        for param, grad in zip(params, torch.autograd.grad(loss, params)):
            param.grad = grad
        return nn.utils.clip_grad_norm_(params, self.config.grad_clip)

    def update(self, batch: dict) -> dict[str, torch.Tensor]:
        """One training step. Returns metrics as device tensors (no host sync inside)."""
        metrics = self.compute_gradients(batch)
        for optimizer in self.optimizers.values():
            optimizer.step()
        return {k: v.detach() for k, v in metrics.items()}

    # ------------------------------------------------------------------ acting
    def initial_policy_state(self, batch_size: int = 1):
        return (self.rssm.get_initial_state(batch_size, self.device),
                torch.zeros(batch_size, self.action_size, device=self.device))

    @torch.no_grad()
    def policy(self, image: np.ndarray, state, explore: bool):
        """One step of acting: filter the new frame into the latent state, then act.

        image (64, 64, 3) uint8 (or (N, 64, 64, 3)); state from `initial_policy_state` or the
        previous call. explore=True samples and adds Gaussian noise of std expl_noise (clipped
        to [-1, 1]), as the paper; explore=False takes the actor's mode (evaluation)."""
        latent, prev_action = state
        image = torch.as_tensor(image, device=self.device)
        single = image.dim() == 3
        embed = self.encoder(preprocess(image[None] if single else image))
        latent, _ = self.rssm.obs_step(latent, prev_action, embed)
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
        last = RSSMState(*(x[-1] for x in posterior))
        prior = self.rssm.rollout_prior(actions[context:], last)
        frames = torch.cat([self.decoder(posterior.features), self.decoder(prior.features)])
        return to_uint8(frames)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict:
        return {"model": self.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}

    def load_checkpoint(self, checkpoint: dict) -> None:
        try:
            self.load_state_dict(checkpoint["model"])
        except RuntimeError as error:
            raise ValueError(
                "This checkpoint was written by a model of another size (a different preset or "
                "architecture setting), so its weights do not fit this one. Load it with the "
                "config.json of its own run folder (dreamer-train --resume RUN does).\n"
                f"PyTorch said: {str(error).splitlines()[0]}") from None
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(checkpoint["optimizers"][key])


def _compiled_or_eager(fn):
    """torch.compile `fn`; if compiling fails on this machine, warn once and run it eagerly."""
    compiled, state = torch.compile(fn), {"ok": True}

    def run(*args):
        if state["ok"]:
            try:
                return compiled(*args)
            except Exception as error:  # a compiler bug must not stop training
                state["ok"] = False
                warnings.warn(f"torch.compile failed ({type(error).__name__}: {error}); running eagerly.")
        return fn(*args)

    return run
