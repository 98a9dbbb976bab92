"""The lessons' pictures: imagined rollouts, the imagination debugger, metric grids, short clips
as animated GIFs inside HTML. Every function returns a numpy array (uint8, H x W x 3), a dict of
them, a matplotlib Figure or an HTML string, so it can be tested without a screen; the widgets
(course/widgets.py) and the notebooks are thin layers over these. The pictures a run folder
needs (film strips, open-loop summaries, learning curves, GIFs) are the library's, in viz.py."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, Locator, LogLocator, MaxNLocator
from PIL import Image

from dreamer_lib.viz import _as_numpy, upscale


def animation_html(frames, fps: int = 10, scale: int = 2, max_kb: int = 400) -> str:
    """(T, H, W, 3) uint8 frames -> an HTML `<img>` holding an animated GIF as a data URI.

    The static fallback for widgets: it needs no JavaScript, so it plays wherever HTML shows
    (GitHub's notebook view, nbviewer, nbconvert's HTML, an untrusted notebook) and nbval has
    nothing to drive. The GIF keeps the frames' own pixels, one palette of up to 256 colours for
    the whole clip, no dithering; the browser enlarges it `scale` times (width and height of the
    <img>, nearest-neighbour where the viewer allows styles). If the GIF is larger than `max_kb`
    kilobytes, every other frame is dropped (each shown twice as long, so the clip keeps its
    real-time speed) until it fits: lessons stay small enough to open."""
    import base64

    frames = _as_numpy(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"Expected frames (T, H, W, 3) with T >= 1; got {frames.shape}.")
    step = 1
    while True:
        data = _gif_bytes(frames[::step], duration_ms=round(1000 * step / fps))
        if len(data) <= max_kb * 1000 or len(frames[::step]) <= 2:
            break
        step *= 2
    note = f"{len(frames[::step])} frames at {fps / step:g} fps" + (
        f" (1 in {step} of {len(frames)})" if step > 1 else "")
    return (f'<img src="data:image/gif;base64,{base64.b64encode(data).decode("ascii")}" '
            f'width="{frames.shape[2] * scale}" height="{frames.shape[1] * scale}" alt="animation, {note}" '
            f'title="{note}" style="image-rendering: pixelated">')


def _gif_bytes(frames: np.ndarray, duration_ms: int) -> bytes:
    """An animated GIF (looping) of (T, H, W, 3) uint8 frames, with one palette for all frames."""
    import io

    sample = frames[np.linspace(0, len(frames) - 1, min(len(frames), 16)).round().astype(int)]
    palette = Image.fromarray(np.concatenate(list(sample), axis=0)).quantize(256, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0,
                   optimize=False)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------- imagination
def imagination_strip(frames, rewards, values, starts=None, every: int = 1, title: str | None = None,
                      units: str = "") -> plt.Figure:
    """Imagined rollouts as a still, one row per rollout: the decoded frames with the predicted
    reward r and value v written under each frame.

    frames (N, H, 64, 64, 3) uint8 (or (H, 64, 64, 3) for one rollout); rewards, values (N, H)
    (or (H,)); starts: optional (N, 64, 64, 3) real frames the imagination started from, drawn
    first in each row; every: show every `every`-th imagined step; units: a note for the title."""
    frames = _as_numpy(frames)
    rewards, values = np.asarray(rewards, np.float32), np.asarray(values, np.float32)
    if frames.ndim == 4:
        frames, rewards, values = frames[None], rewards[None], values[None]
        starts = None if starts is None else _as_numpy(starts)[None]
    if rewards.shape != frames.shape[:2] or values.shape != frames.shape[:2]:
        raise ValueError(f"rewards {rewards.shape} and values {values.shape} need one number per frame: "
                         f"frames are {frames.shape[:2]} (rollouts, steps).")
    steps = list(range(0, frames.shape[1], every))
    offset = 0 if starts is None else 1
    rows, columns = frames.shape[0], len(steps) + offset
    fig, axes = plt.subplots(rows, columns, figsize=(1.05 * columns, 1.45 * rows), squeeze=False)
    for n in range(rows):
        if starts is not None:
            axes[n][0].imshow(_as_numpy(starts)[n])
            axes[n][0].set_xlabel("real start", fontsize=7, color="C0")
        for column, k in enumerate(steps, offset):
            axes[n][column].imshow(frames[n, k])
            axes[n][column].set_xlabel(f"r {rewards[n, k]:.2f}\nv {values[n, k]:.1f}", fontsize=7)
            if n == 0:
                axes[n][column].set_title(f"+{k + 1}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "Imagined with the actor and the prior" + (f" ({units})" if units else ""), fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------- debugger
def debug_episode(agent, episode: dict, start: int, horizon: int | None = None, seed: int = 0) -> dict:
    """Everything the imagination debugger shows for one episode, as numpy arrays.

    episode: a replay-buffer episode (image (T, 64, 64, 3) uint8, action (T, A), reward (T,));
    start: the step from which the open-loop prediction and the policy's imagination begin;
    horizon: imagined steps (default: the agent's config.horizon). Rewards and values are given
    in env reward units (the heads learn reward x config.reward_scale; we divide it out).

    Returns a dict:
      real, posterior, open_loop (T, 64, 64, 3) uint8: the episode, its reconstruction from the
        posterior (filtering every frame), and the model's frames when it sees frames 0..start
        only and then predicts with the prior and the episode's real actions (equal to the
        posterior reconstruction up to `start`);
      imagined (horizon, 64, 64, 3) uint8: the actor's own rollout from the posterior state at
        `start`, decoded; imagined step k shows time start + 1 + k;
      reward, reward_posterior, reward_open_loop, value, kl, error_posterior, error_open_loop (T,):
        real reward, predicted rewards, the critic's value of each posterior state,
        KL(posterior || prior) per step (nats, summed over the stoch dimensions), and the mean
        squared pixel error (in [0, 1] pixel units) of the two reconstructions;
      policy_mode, policy_std (T, A): the actor's action (its mode) and the std of its Gaussian
        before the tanh, at each posterior state: a mode at +-1 with a tiny std is a saturated
        actor, whose gradient through the tanh has vanished;
      imagined_reward, imagined_value, imagined_action (horizon,) / (horizon, A);
      start, horizon (ints).
    Sampling is seeded (`seed`) without touching the global random state."""
    import torch

    from dreamer_lib.evaluate import seeded
    from dreamer_lib.networks import preprocess, to_uint8
    from dreamer_lib.discrete import DiscreteState, categorical_kl
    from dreamer_lib.rssm import RSSMState, kl_divergence

    config = agent.config
    horizon = horizon or config.horizon
    length = len(episode["image"])
    if not 0 <= start < length:
        raise ValueError(f"start={start} is outside the episode (steps 0..{length - 1}).")
    device = agent.device
    images = torch.as_tensor(np.asarray(episode["image"]), device=device)[:, None]  # (T, 1, 64, 64, 3)
    actions = torch.as_tensor(np.asarray(episode["action"], np.float32), device=device)[:, None]  # (T, 1, A)
    scale = config.reward_scale

    def decode(states: RSSMState) -> np.ndarray:
        return to_uint8(agent.decoder(states.features)).cpu().numpy()[:, 0]

    def error(frames: np.ndarray) -> np.ndarray:
        diff = frames.astype(np.float32) / 255 - np.asarray(episode["image"], np.float32) / 255
        return (diff ** 2).mean((1, 2, 3))

    with torch.no_grad(), seeded(seed, device):
        embed = agent.encoder(preprocess(images))  # (T, 1, embed)
        initial = agent.rssm.get_initial_state(1, device)
        posterior, prior = agent.rssm.rollout_observation(embed, actions, initial)  # (T, 1, ...)
        last = posterior.at(start)  # (1, ...)
        if start + 1 < length:
            predicted = agent.rssm.rollout_prior(actions[start + 1:], last)  # (T - start - 1, 1, ...)
            open_states = type(posterior)(*(torch.cat([a[:start + 1], b]) for a, b in zip(posterior, predicted)))
        else:
            open_states = posterior
        # The actor's own rollout from `last`: states (H, 1, ...) and the actions it took (H, 1, A).
        imagined, imagined_actions, _ = agent.rssm.rollout_imagination(last, agent.actor, horizon)
        policy = agent.actor(posterior.features)  # (T, 1) distributions
        traces = {
            "real": np.asarray(episode["image"]),
            "posterior": decode(posterior),
            "open_loop": decode(open_states),
            "imagined": decode(imagined),
            "reward": np.asarray(episode["reward"], np.float32),
            "reward_posterior": (agent.reward(posterior.features)[:, 0] / scale).cpu().numpy(),
            "reward_open_loop": (agent.reward(open_states.features)[:, 0] / scale).cpu().numpy(),
            "value": (agent.critic(posterior.features)[:, 0] / scale).cpu().numpy(),
            "kl": (categorical_kl if isinstance(posterior, DiscreteState) else kl_divergence)(posterior, prior)[:, 0]
            .cpu().numpy(),
            "imagined_reward": (agent.reward(imagined.features)[:, 0] / scale).cpu().numpy(),
            "imagined_value": (agent.critic(imagined.features)[:, 0] / scale).cpu().numpy(),
            "imagined_action": imagined_actions[:, 0].cpu().numpy(),
            "policy_mode": policy.mode()[:, 0].cpu().numpy(),
            "policy_std": policy.normal.scale[:, 0].cpu().numpy(),
        }
    traces["error_posterior"] = error(traces["posterior"])
    traces["error_open_loop"] = error(traces["open_loop"])
    traces.update(start=int(start), horizon=int(horizon))
    return traces


DEBUGGER_PANELS = (("real", "real frame"), ("posterior", "posterior recon."), ("open_loop", "open-loop prior"),
                   ("imagined", "actor imagination"))


def _imagined_at(traces: dict, t: int) -> np.ndarray | None:
    """The imagined frame shown at time t, or None outside start+1 .. start+horizon."""
    k = t - traces["start"] - 1
    return traces["imagined"][k] if 0 <= k < len(traces["imagined"]) else None


def debugger_frame(traces: dict, t: int) -> plt.Figure:
    """The debugger at time t: four frames on top (real, posterior reconstruction, open-loop
    prediction from `start`, the actor's imagination from `start`), and below them the traces of
    reward (real vs predicted), value and KL(posterior || prior) over the episode, with a line
    at t and the imagined span shaded. traces: the dict of `debug_episode`."""
    length = len(traces["real"])
    t = int(np.clip(t, 0, length - 1))
    start, horizon = traces["start"], traces["horizon"]
    fig = plt.figure(figsize=(10, 5.6))
    grid = fig.add_gridspec(2, 12, height_ratios=[1.15, 1])
    for i, (key, label) in enumerate(DEBUGGER_PANELS):
        ax = fig.add_subplot(grid[0, 3 * i:3 * i + 3])
        frame = _imagined_at(traces, t) if key == "imagined" else traces[key][t]
        if key == "open_loop" and t > start:
            label += f" (+{t - start})"
        if key == "imagined" and frame is not None:
            label += f" (+{t - start})"
        if frame is None:
            ax.imshow(np.full_like(traces["real"][0], 235))
            ax.text(32, 32, f"imagined only for\nt = {start + 1}..{start + horizon}", ha="center", va="center",
                    fontsize=8, color="0.3")
        else:
            ax.imshow(frame)
        ax.set_title(label, fontsize=9, color="C3" if key == "open_loop" and t > start else "k")
        ax.set_xticks([])
        ax.set_yticks([])
    steps = np.arange(length)
    imagined_steps = np.arange(start + 1, start + 1 + len(traces["imagined_reward"]))
    panels = [("reward (env units)", [("reward", "real", "k"), ("reward_posterior", "pred. (posterior)", "C0"),
                          ("reward_open_loop", "pred. (open loop)", "C3")], "imagined_reward"),
              ("value (env units)", [("value", "critic (posterior)", "C2")], "imagined_value"),
              ("KL(post || prior) [nats]", [("kl", "per step", "C4")], None)]
    for i, (name, lines, imagined) in enumerate(panels):
        ax = fig.add_subplot(grid[1, 4 * i:4 * i + 4])
        for key, label, color in lines:
            ax.plot(steps, traces[key], color=color, lw=1, label=label)
        if imagined:
            ax.plot(imagined_steps, traces[imagined], color="C1", lw=1.5, ls="--", label="imagined (actor)")
        ax.axvspan(start, start + horizon, color="C1", alpha=0.1)
        ax.axvline(t, color="k", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="best")
        ax.grid(alpha=0.3)
    fig.suptitle(f"t = {t}   (observations stop at start = {start}; the shaded span is imagined)", fontsize=10)
    fig.tight_layout()
    return fig


def debugger_video(traces: dict, scale: int = 2, every: int = 1) -> np.ndarray:
    """The debugger's four frames side by side for every step t, with labels, as (T, H, W, 3)
    uint8: the static fallback that `animation_html` plays where no kernel drives a slider.
    The imagined panel is grey outside start+1 .. start+horizon; a red border marks the open-loop
    panel once it predicts without observations."""
    from PIL import ImageDraw

    real = _as_numpy(traces["real"])
    size, gap, header, footer = real.shape[1] * scale, 4, 14, 14
    width = 4 * size + 3 * gap
    frames = []
    for t in range(0, len(real), every):
        canvas = np.full((header + size + footer, width, 3), 255, np.uint8)
        for i, (key, _) in enumerate(DEBUGGER_PANELS):
            frame = _imagined_at(traces, t) if key == "imagined" else traces[key][t]
            frame = np.full_like(real[0], 200) if frame is None else frame
            x = i * (size + gap)
            canvas[header:header + size, x:x + size] = upscale(frame, scale)
            if key == "open_loop" and t > traces["start"]:
                canvas[header:header + size, x:x + size][[0, 1, -2, -1]] = (220, 40, 40)
                canvas[header:header + size, x:x + size][:, [0, 1, -2, -1]] = (220, 40, 40)
        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        for i, (_, label) in enumerate(DEBUGGER_PANELS):
            draw.text((i * (size + gap) + 2, 1), label, fill=(0, 0, 0))
        draw.text((2, header + size + 1), f"t={t}  start={traces['start']}  reward {traces['reward'][t]:.2f}  "
                  f"pred {traces['reward_posterior'][t]:.2f}  KL {traces['kl'][t]:.1f}", fill=(0, 0, 0))
        frames.append(np.asarray(image))
    return np.stack(frames)


def _decades_shown(low: float, high: float) -> int:
    """How many powers of 10 lie within [low, high] (a log axis's limits)."""
    low, high = sorted((low, high))
    return int(np.floor(np.log10(high)) - np.ceil(np.log10(low)) + 1) if low > 0 else 0


class _LogMinorTicks(Locator):
    """Minor ticks for a log axis: at 2 and 5 times the powers of 10, or, where the limits hold
    no power of 10, three or four plain ticks."""

    def __call__(self):
        return self.tick_values(*self.axis.get_view_interval())

    def tick_values(self, low, high):
        if _decades_shown(low, high) < 1:
            return MaxNLocator(4).tick_values(low, high)
        return LogLocator(base=10, subs=(2, 5), numticks=12).tick_values(low, high)


def _readable_axis(ax, values) -> None:
    """Ticks at 9 pt, at most 5 per axis, plain numbers (no offset). A log y axis, with plain
    numbers at its ticks, only where positive values span more than a factor of 30 (a loss that
    spikes, a KL that jumps); a linear one otherwise. Where a row's log axis shows fewer than two
    powers of 10, its minor ticks get numbers too (plain ticks where it shows none)."""
    ax.tick_params(labelsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) and values.min() > 0 and values.max() / values.min() > 30:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
        ax.yaxis.set_minor_locator(_LogMinorTicks())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:g}" if _decades_shown(*ax.get_ylim()) < 2 else ""))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.grid(alpha=0.3, which="major")


def metrics_grid(rows: list[dict], keys=("image_loss", "reward_loss", "kl", "actor_loss", "critic_loss",
                                        "imagined_return"), x: str = "updates", labels=None,
                 columns: int = 3) -> plt.Figure:
    """Training metrics against updates (or env_frames), one small plot per key. rows: dicts as
    metrics.csv (one per training phase), or a dict {label: rows} to overlay several runs.
    All text is 9 pt or larger."""
    runs = rows if isinstance(rows, dict) else {None: rows}
    rows_count = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows_count, columns, figsize=(3.6 * columns, 2.6 * rows_count), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for i, (label, run) in enumerate(runs.items()):
            xs = [float(r[x]) for r in run]
            ys = [float(r[key]) for r in run]
            ax.plot(xs, ys, lw=1.2, color=f"C{i}", label=label)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel(x, fontsize=9)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if len(runs) > 1:
        axes.flat[0].legend(fontsize=9)
    fig.tight_layout()
    return fig


# The logged metrics' titles, with their units: the world model's losses are in nats (a Gaussian
# log-likelihood summed over each frame's pixels; the KL averaged over batch and time).
CURVE_TITLES = {"image_loss": "image loss per frame (nats)", "kl": "KL, batch mean (nats)"}


def diagnosis_figure(runs: dict, t: int, control: str | None = None,
                     curves=("image_loss", "kl"), free_nats: float | None = 3.0) -> plt.Figure:
    """Symptoms of several training runs side by side, one row per run.

    runs: {name: (traces, history)} with traces from `debug_episode` (same episode and start for
    every run) and history a list of per-update metric dicts. Columns: the real frame at t, the
    posterior reconstruction, the open-loop prediction (each model frame labelled with its mean
    squared pixel error at t), KL(posterior || prior) along the episode, then each of `curves`
    against updates. The `control` run (default: the first) is drawn in grey in every other
    row's plots, so each row reads as "this setting vs the healthy one". A dotted line marks
    `free_nats` on the KL plots (None: no line). All text is 9 pt or larger; a column whose
    positive values (all rows together) span more than a factor of 30 gets a log axis with
    plain-number ticks in every row."""
    names = list(runs)
    control = control or names[0]
    columns = 4 + len(curves)
    fig, axes = plt.subplots(len(names), columns, figsize=(1.45 * (3 + 2 * (columns - 3)), 2.0 * len(names) + 0.5),
                             squeeze=False, gridspec_kw={"width_ratios": [1, 1, 1] + [2] * (columns - 3)})
    base_traces, base_history = runs[control]
    column_values = {i: [] for i in range(3, columns)}
    for row, name in enumerate(names):
        traces, history = runs[name]
        ax = axes[row]
        for i, (key, label) in enumerate((("real", "real"), ("posterior", "posterior"), ("open_loop", "open loop"))):
            ax[i].imshow(traces[key][t])
            ax[i].set_xticks([])
            ax[i].set_yticks([])
            if key != "real":
                ax[i].set_xlabel(f"error {traces['error_' + key][t]:.4f}", fontsize=9)
            if row == 0:
                ax[i].set_title(f"{label}, t={t}" if i == 0 else label, fontsize=10)
        ax[0].set_ylabel(name, fontsize=10, rotation=0, ha="right", va="center")
        plots = [("KL per step (nats)", "episode step", np.arange(len(traces["kl"])), traces["kl"], base_traces["kl"],
                  True)]
        for key in curves:
            steps = np.arange(1, len(history) + 1)
            plots.append((CURVE_TITLES.get(key, key), "updates", steps, [h[key] for h in history],
                          [h[key] for h in base_history], key == "kl"))
        for i, (title, x_label, xs, ys, base, is_kl) in enumerate(plots, 3):
            if name != control:
                ax[i].plot(xs[:len(base)], base, color="0.7", lw=1, label=control)
            ax[i].plot(xs, ys, color="C3" if name != control else "C0", lw=1, label=name)
            column_values[i] += [*ys, *base]
            if i == 3:
                ax[i].axvline(traces["start"], color="k", lw=0.6, ls=":")
            if free_nats is not None and is_kl:  # the free nats clamp a KL
                ax[i].axhline(free_nats, color="k", lw=0.6, ls=":")
            if row == 0:
                ax[i].set_title(title, fontsize=10)
            if row == len(names) - 1:
                ax[i].set_xlabel(x_label, fontsize=9)
    for i, values in column_values.items():  # one scale per column (log or linear), so rows compare
        for ax in axes[:, i]:
            _readable_axis(ax, values)
    notes = [f"grey: the {control} run, behind each other row", "error: mean squared pixel error at t",
             f"dotted: the open loop's start (step {base_traces['start']})"]
    if free_nats is not None:
        notes[-1] += f" and {free_nats:g} free nats"
    fig.suptitle(";  ".join(notes), fontsize=10)
    fig.tight_layout()
    return fig
