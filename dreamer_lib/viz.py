"""The pictures a run folder holds (train.py and dreamer-eval write them): film strips, the
official code's open-loop summary, the learning curve, GIFs. Every function returns a numpy
array (uint8, H x W x 3) or a matplotlib Figure, so it can be tested without a screen.

The lessons' own pictures (imagined rollouts, the imagination debugger, metric grids) live in
the course layer, dreamer_lib/course/pictures.py."""
from __future__ import annotations

import pathlib

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image


def _as_numpy(frames) -> np.ndarray:
    frames = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"Expected uint8 frames (..., H, W, 3); got {frames.dtype}. "
                         "Use dreamer_lib.networks.to_uint8 on decoder outputs.")
    return frames


def filmstrip(frames, every: int = 1, columns: int | None = None) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 -> one image with the frames side by side (wrapped into rows of
    `columns`), taking every `every`-th frame."""
    frames = _as_numpy(frames)[::every]
    columns = columns or len(frames)
    rows = -(-len(frames) // columns)
    pad = rows * columns - len(frames)
    frames = np.concatenate([frames, np.full((pad, *frames.shape[1:]), 255, np.uint8)]) if pad else frames
    t, h, w, c = frames.shape
    return frames.reshape(rows, columns, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, columns * w, c)


def openl_frames(truth, model) -> np.ndarray:
    """The official code's open-loop summary, one frame per time step.

    truth, model: (T, B, H, W, 3) uint8 -> (T, 3H, B*W, 3): per step, rows ground truth / model /
    error, with error = (model - truth + 1) / 2 (grey = no error), sequences side by side."""
    truth, model = _as_numpy(truth).astype(np.float32) / 255, _as_numpy(model).astype(np.float32) / 255
    if truth.shape != model.shape:
        raise ValueError(f"truth {truth.shape} and model {model.shape} must have the same shape (T, B, H, W, 3).")
    error = (model - truth + 1) / 2
    rows = np.concatenate([truth, model, error], axis=2)  # (T, B, 3H, W, 3)
    t, b, h3, w, c = rows.shape
    video = rows.transpose(0, 2, 1, 3, 4).reshape(t, h3, b * w, c)
    return (video * 255).round().astype(np.uint8)


def openl_strip(truth, model, context: int = 5, every: int = 5, sequence: int = 0, note: str = "") -> plt.Figure:
    """One sequence of the open-loop prediction as a still: columns are time steps (every
    `every`-th), rows truth / model / error; a line marks where observations stop. `note` is
    added to the title (e.g. how many updates the model had)."""
    truth, model = _as_numpy(truth)[:, sequence], _as_numpy(model)[:, sequence]
    video = openl_frames(truth[:, None], model[:, None])  # (T, 3H, W, 3)
    steps = list(range(0, len(video), every))
    fig, axes = plt.subplots(1, len(steps), figsize=(1.1 * len(steps), 3.6), squeeze=False)
    for ax, t in zip(axes[0], steps):
        ax.imshow(video[t])
        ax.set_title(f"t={t}" + (" obs" if t < context else ""), fontsize=7, color="C0" if t < context else "k")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].set_yticks([32, 96, 160], ["truth", "model", "error"], fontsize=8)
    fig.suptitle(f"Open-loop prediction: {context} observed frames, then the prior imagines with the real actions"
                 + (f" ({note})" if note else ""), fontsize=9)
    fig.tight_layout()
    return fig


def learning_curve(rows: list[dict], x: str = "env_frames", reference: dict | None = None) -> plt.Figure:
    """Eval return (mean +- std over eval episodes) against env frames (or agent steps / updates,
    named on the axis). rows: dicts with x, return_mean, return_std (as eval.csv)."""
    xs = np.array([float(r[x]) for r in rows])
    mean = np.array([float(r["return_mean"]) for r in rows])
    std = np.array([float(r["return_std"]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, mean, "o-", label="eval return (policy mode, mean)")
    ax.fill_between(xs, mean - std, mean + std, alpha=0.25, label="+- std over eval episodes")
    if reference:
        ax.plot(reference["x"], reference["y"], "k--", label=reference["label"])
    ax.set_xlabel({"env_frames": "env frames (agent steps x action repeat)", "agent_steps": "agent steps",
                   "updates": "gradient updates"}.get(x, x))
    ax.set_ylabel("episode return")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of (..., H, W, 3) frames, for GIFs a person can see."""
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2) if factor > 1 else frames


def save_gif(frames, path: str | pathlib.Path, fps: int = 20, scale: int = 1) -> pathlib.Path:
    """(T, H, W, 3) uint8 frames -> an animated GIF (the official code's summaries ran at 20 fps)."""
    frames = upscale(_as_numpy(frames), scale)
    images = [Image.fromarray(f) for f in frames]
    path = pathlib.Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path
