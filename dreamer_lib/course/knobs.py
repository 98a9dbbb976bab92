"""Knobs for lessons 3 and 5: turn a hyperparameter and watch what the library's own math does.

Each knob is a core that returns numbers (tested without a screen), a figure of them, and a widget
(sliders and an Output that redraws the figure). The cores call the library (rssm.kl_loss,
actor_critic.compute_lambda_returns, actor_critic.Actor), never a copy of its equations.
`compare(figure, settings)` stacks fixed settings in one figure, for readers without a kernel.

    free nats (lesson 3)        free_nats_core       free_nats_figure       free_nats_widget
    lambda, horizon (lesson 5)  lambda_return_core   lambda_return_figure   lambda_return_widget
    tanh-Gaussian (lesson 5)    tanh_gaussian_core   tanh_gaussian_figure   tanh_gaussian_widget
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from dreamer_lib.actor_critic import Actor, compute_lambda_returns
from dreamer_lib.rssm import RSSMState, kl_loss

PANELS = {"free_nats_figure": (3, 3.6), "lambda_return_figure": (2, 5.2), "tanh_gaussian_figure": (2, 4.8)}
readable = plt.rc_context({"font.size": 11, "legend.fontsize": 9.5, "axes.titlesize": 11})  # as a decorator


def _row(axes, name: str):
    """The caller's row of axes (see compare), or a new figure of one row."""
    count, width = PANELS[name]
    return plt.subplots(1, count, figsize=(width * count, 3.6))[1] if axes is None else axes


@readable
def compare(figure, settings: list[dict]) -> plt.Figure:
    """One row per setting: compare(free_nats_figure, [dict(free_nats=0), dict(free_nats=3)])."""
    count, width = PANELS[figure.__name__]
    fig, rows = plt.subplots(len(settings), count, figsize=(width * count, 3.4 * len(settings)), squeeze=False)
    for row, setting in zip(rows, settings):
        figure(**setting, axes=row)
    return fig


def _widget(figure, **ranges):
    """A slider per name -> (min, max, step, value) (all ints: an IntSlider) over figure(**values)."""
    import ipywidgets as widgets
    from IPython.display import display

    def slider(name, low, high, step, value):
        kind = widgets.IntSlider if all(isinstance(x, int) for x in (low, high, step, value)) else widgets.FloatSlider
        return kind(min=low, max=high, step=step, value=value, description=name.rstrip("_"),
                    continuous_update=False, style={"description_width": "initial"})

    sliders = {name: slider(name, *spec) for name, spec in ranges.items()}

    def show(**values):
        fig = figure(**values)
        display(fig)
        plt.close(fig)

    return widgets.VBox([widgets.HBox(list(sliders.values())), widgets.interactive_output(show, sliders)])


# ------------------------------------------------------------------------------------- free nats
def free_nats_core(free_nats: float = 3.0, mean_kl: float = 2.0, states: int = 8) -> dict:
    """rssm.kl_loss on a batch of posterior/prior pairs whose KLs spread from 0.2 to 1.8 x mean_kl.
    With unit stds and means d apart in one dim, KL(q||p) = sum_i 1/2 (s_q^2/s_p^2 + (m_q - m_p)^2/s_p^2
    - 1 - log s_q^2/s_p^2) = d^2 / 2, so d = sqrt(2 KL). Gradient norms are per state (over its q and
    p means and stds), with free nats and without; the sweep is the batch's norm over free nats 0..6."""
    kls = mean_kl * np.linspace(0.2, 1.8, states)

    def loss_and_grads(nats: float):
        q_mean = torch.zeros(states, 4, dtype=torch.float64)
        q_mean[:, 0] = torch.as_tensor(np.sqrt(2 * kls))
        params = [q_mean, torch.ones_like(q_mean), torch.zeros_like(q_mean), torch.ones_like(q_mean)]
        q_mean, q_std, p_mean, p_std = (p.requires_grad_() for p in params)
        loss, kl = kl_loss(RSSMState(q_mean, q_std, q_mean, q_mean), RSSMState(p_mean, p_std, p_mean, p_mean), nats)
        grads = torch.autograd.grad(loss, params)
        per_state = sum(g.pow(2).sum(-1) for g in grads).sqrt().numpy()  # (states,)
        return float(loss.detach()), float(kl.detach()), per_state, grads[0].numpy()

    loss, kl, grad, grad_q_mean = loss_and_grads(free_nats)
    # a grid of free nats, plus either side of the mean KL, where the gradient switches off
    sweep = np.unique(np.clip(np.r_[np.linspace(0, 6, 25), kl - 1e-6, kl + 1e-6], 0, 6))
    return dict(kl=kls, mean_kl=kl, loss=loss, grad=grad, grad_unclamped=loss_and_grads(0.0)[2],
                grad_posterior_mean=grad_q_mean, sweep=sweep,
                sweep_grad=np.array([np.linalg.norm(loss_and_grads(n)[2]) for n in sweep]))


@readable
def free_nats_figure(free_nats: float = 3.0, mean_kl: float = 2.0, axes=None) -> plt.Figure:
    d, (left, middle, right) = free_nats_core(free_nats, mean_kl), _row(axes, "free_nats_figure")
    states = np.arange(len(d["kl"]))
    left.bar(states, d["kl"], color="C2")
    left.axhline(d["mean_kl"], color="k", lw=2, label=f"mean KL {d['mean_kl']:.2f}")
    left.axhline(free_nats, color="C3", ls="--", lw=2, label=f"free nats {free_nats:g}")
    left.set(ylim=(0, 12), xlabel="state in the batch", ylabel="nats",
             title=f"KL(q || p) per state\nloss = max(mean KL, free nats) = {d['loss']:.2f}")
    middle.bar(states, d["grad"], color="C0", label="with free nats")
    middle.bar(states, d["grad_unclamped"], fill=False, edgecolor="k", label="free nats 0")
    middle.set(ylim=(0, 1.35 * d["grad_unclamped"].max()), xlabel="state in the batch",
               title="gradient norm per state\n(its q and p means and stds)")
    right.plot(d["sweep"], d["sweep_grad"], color="C0", lw=2, label="all states")
    right.axvline(free_nats, color="C3", ls="--", lw=2, label="free nats now")
    right.set(xlabel="free nats", ylim=(0, 1.35 * d["sweep_grad"].max()),
              title="gradient norm of the\nbatch vs free nats")
    for ax in (left, middle, right):
        ax.legend(loc="upper left")
    left.figure.tight_layout()
    return left.figure


def free_nats_widget():
    return _widget(free_nats_figure, free_nats=(0.0, 6.0, 0.25, 3.0), mean_kl=(0.5, 6.0, 0.25, 2.0))


# ---------------------------------------------------------------------------- lambda and horizon
GAMMA, STEPS = 0.99, 30
# One imagined trajectory whose reward comes late (steps 20-24), and a wrong critic: half the true
# return plus fixed errors (std 0.3). Both are fixed, so only the knobs move the picture.
REWARDS = np.where((np.arange(STEPS) >= 20) & (np.arange(STEPS) < 25), 1.0, 0.0)
CRITIC_ERRORS = 0.3 * np.random.default_rng(0).standard_normal(STEPS + 1)


def lambda_return_core(lambda_: float = 0.95, horizon: int = 15) -> dict:
    """V_lambda of eq. 6 for the first `horizon` steps, by the library's compute_lambda_returns:
    R_t = r_t + gamma ((1 - lambda) v_{t+1} + lambda R_{t+1}), R_H = v_H (the bootstrap).
    R_0 mixes the n-step returns sum_{k<n} gamma^k r_k + gamma^n v_n, n = 1..H; their weights are
    read off the library by autograd (dR_0/dv_n = gamma^n w_n), not from a formula."""
    rewards = torch.as_tensor(REWARDS)[:, None]  # (STEPS, 1)
    discounts = torch.full_like(rewards, GAMMA)
    # lambda = 1 over the whole trajectory is the discounted reward sum: the true return
    truth = compute_lambda_returns(rewards, torch.zeros_like(rewards), discounts, torch.zeros(1), 1.0)[:, 0]
    true_values = torch.cat([truth, torch.zeros(1)])  # (STEPS + 1,): no reward after the last step
    values = (0.5 * true_values + torch.as_tensor(CRITIC_ERRORS)).requires_grad_()  # the wrong critic
    returns = compute_lambda_returns(rewards[:horizon], values[:horizon, None], discounts[:horizon],
                                     values[horizon, None], lambda_)[:, 0]  # (H,)
    (grad,) = torch.autograd.grad(returns[0], values)
    n = np.arange(1, horizon + 1)
    return dict(rewards=REWARDS, values=values.detach().numpy(), true=true_values.numpy(),
                returns=returns.detach().numpy(), n=n, weights=grad[1:horizon + 1].numpy() / GAMMA ** n)


@readable
def lambda_return_figure(lambda_: float = 0.95, horizon: int = 15, axes=None) -> plt.Figure:
    d, (left, right) = lambda_return_core(lambda_, horizon), _row(axes, "lambda_return_figure")
    steps = np.arange(STEPS + 1)
    left.bar(steps[:-1], d["rewards"], color="0.75", label="reward $r_t$")
    left.plot(steps, d["true"], color="k", lw=2, label="true return")
    left.plot(steps, d["values"], color="C1", ls="--", lw=2, label="critic $v_t$ (wrong)")
    left.plot(steps[:horizon], d["returns"], "o-", color="C0", lw=2, ms=4, label=r"$V_\lambda(s_t)$")
    left.axvline(horizon, color="C3", ls=":", lw=2, label="horizon H")
    left.set(xlabel="imagined step t", ylim=(-1, 8), xlim=(-0.5, STEPS + 0.5), title=rf"λ = {lambda_:.2f}, "
             rf"H = {horizon}: $V_\lambda(s_0)$ = {d['returns'][0]:.2f}, true {d['true'][0]:.2f}")
    left.legend(loc="upper left", ncol=2)
    right.bar(d["n"], d["weights"], color="C0")
    right.set(xlabel="n: n rewards, then $v_n$", ylim=(0, 1.05), xlim=(0.3, STEPS + 0.7),
              title=rf"weight of each n-step return in $V_\lambda(s_0)$ (sum {d['weights'].sum():.2f})")
    left.figure.tight_layout()
    return left.figure


def lambda_return_widget():
    return _widget(lambda_return_figure, lambda_=(0.0, 1.0, 0.05, 0.95), horizon=(1, STEPS, 1, 15))


# ---------------------------------------------------------------------------------- tanh-Gaussian
def tanh_gaussian_core(raw_mean: float = 0.0, mean_scale: float = 5.0, init_std: float = 5.0,
                       samples: int = 20_000, seed: int = 0) -> dict:
    """Actions of the library's Actor when its network outputs `raw_mean` and a raw std of 0 (as a
    fresh network does): mean = mean_scale tanh(raw_mean / mean_scale), std = softplus(0 +
    log(e^init_std - 1)) + min_std = init_std + min_std, action = tanh(mean + std eps)."""
    actor = Actor(1, 1, units=1, mean_scale=mean_scale, init_std=init_std)

    def output(raw: float):  # zero weights in the last layer: the network outputs its bias (raw, 0)
        with torch.no_grad():
            actor.net[-1].weight.zero_()
            actor.net[-1].bias.copy_(torch.tensor([raw, 0.0]))
            return actor(torch.zeros(1, 1))

    torch.manual_seed(seed)
    dist = output(raw_mean)
    actions = dist.rsample((samples,)).flatten().numpy()
    curve = np.linspace(-10, 10, 81)  # the mean's soft bound, read off the Actor too
    return dict(actions=actions, mean=float(dist.normal.mean), std=float(dist.normal.stddev),
                saturated=float(np.mean(np.abs(actions) > 0.99)), curve_raw=curve,
                curve_mean=np.array([float(output(m).normal.mean) for m in curve]))


@readable
def tanh_gaussian_figure(raw_mean: float = 0.0, mean_scale: float = 5.0, init_std: float = 5.0,
                         axes=None) -> plt.Figure:
    d, (left, right) = tanh_gaussian_core(raw_mean, mean_scale, init_std), _row(axes, "tanh_gaussian_figure")
    left.hist(d["actions"], bins=np.linspace(-1, 1, 51), color="C0", density=True)
    left.axvline(np.tanh(d["mean"]), color="k", ls="--", lw=2)
    left.set(xlabel="action = tanh(mean + std ε)", ylabel="density", xlim=(-1.05, 1.05), xticks=np.linspace(-1, 1, 5),
             title=f"std {d['std']:.2f}, tanh(mean) {np.tanh(d['mean']):.2f} (dashed)\n"
                   f"{100 * d['saturated']:.0f}% of actions beyond ±0.99")
    right.plot(d["curve_raw"], d["curve_mean"], color="C0", lw=2)
    right.plot([raw_mean], [d["mean"]], "o", color="C3", ms=8)
    right.set(xlabel="raw network output m", ylabel="pre-tanh mean", ylim=(-10.5, 10.5), xticks=range(-10, 11, 5),
              yticks=range(-10, 11, 5), title=f"mean = {mean_scale:g} tanh(m / {mean_scale:g}) = {d['mean']:.2f}")
    left.figure.tight_layout()
    return left.figure


def tanh_gaussian_widget():
    return _widget(tanh_gaussian_figure, raw_mean=(-10.0, 10.0, 0.5, 0.0), mean_scale=(0.5, 10.0, 0.5, 5.0),
                   init_std=(0.1, 10.0, 0.1, 5.0))
