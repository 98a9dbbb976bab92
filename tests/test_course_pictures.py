"""course.pictures.animation_html: an animated GIF in an <img> data URI, no JavaScript, small."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from dreamer_lib.course import pictures


def decode(html: str) -> Image.Image:
    match = re.fullmatch(r'<img src="data:image/gif;base64,([A-Za-z0-9+/=]+)" [^<>]*>', html)
    assert match, html[:200]
    return Image.open(io.BytesIO(base64.b64decode(match.group(1))))


def moving_square(frames: int = 12, size: int = 32) -> np.ndarray:
    video = np.full((frames, size, size, 3), 255, np.uint8)
    for t in range(frames):
        video[t, 8:16, t % size:t % size + 4] = (200, 30, 30)
    return video


def test_animation_html_is_a_gif_img_without_javascript():
    video = moving_square()
    html = pictures.animation_html(video, fps=5, scale=3)
    assert "<script" not in html and "javascript" not in html.lower()
    assert 'width="96" height="96"' in html, "the browser enlarges the frames `scale` times"
    gif = decode(html)
    assert gif.format == "GIF" and gif.size == (32, 32) and gif.n_frames == 12
    assert gif.info["duration"] == 200 and gif.info["loop"] == 0
    for t in (0, 5, 11):  # the palette keeps these flat colours exactly
        gif.seek(t)
        assert np.array_equal(np.asarray(gif.convert("RGB")), video[t])


def test_animation_html_drops_frames_to_fit_and_keeps_real_time():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (40, 48, 48, 3), dtype=np.uint8)  # incompressible
    html = pictures.animation_html(noise, fps=10, scale=1, max_kb=30)
    gif = decode(html)
    assert len(base64.b64decode(re.search(r"base64,([^\"]+)", html).group(1))) <= 30_000
    step = 40 // gif.n_frames
    assert gif.n_frames < 40 and gif.info["duration"] == 100 * step, "dropped frames are shown longer"
    assert f"1 in {step} of 40" in html


def test_animation_html_rejects_bad_frames():
    with pytest.raises(ValueError, match="uint8"):
        pictures.animation_html(np.zeros((3, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        pictures.animation_html(np.zeros((8, 8, 3), np.uint8))


def test_diagnosis_figure_uses_one_y_scale_per_column():
    """A row whose KL spans a factor of 1000 makes the KL column logarithmic in every row, so
    that the rows compare; a column that spans little stays linear in every row."""
    import matplotlib.pyplot as plt

    frames = np.zeros((8, 64, 64, 3), np.uint8)

    def run(kl):
        traces = {"real": frames, "posterior": frames, "open_loop": frames, "error_posterior": np.zeros(8),
                  "error_open_loop": np.zeros(8), "kl": np.asarray(kl, np.float64), "start": 2}
        return traces, [{"image_loss": 1.0 + 0.1 * i, "kl": 3.0} for i in range(5)]

    figure = pictures.diagnosis_figure({"control": run(np.linspace(1, 2, 8)), "broken": run(np.geomspace(0.01, 10, 8))},
                                       t=4)
    axes = np.asarray(figure.axes).reshape(2, 6)
    assert [ax.get_yscale() for ax in axes[:, 3]] == ["log", "log"]  # KL per step: one row spans 1000x
    assert [ax.get_yscale() for ax in axes[:, 4]] == ["linear", "linear"]  # image_loss
    assert axes[1, 3].get_xlabel() == "episode step" and axes[1, 4].get_xlabel() == "updates"
    assert [ax.get_title() for ax in axes[0, 3:]] == ["KL per step (nats)", "image loss per frame (nats)",
                                                      "KL, batch mean (nats)"]
    free_nats_lines = [[line for line in ax.get_lines() if list(line.get_ydata()) == [3.0, 3.0]] for ax in axes[0, 3:]]
    assert [len(lines) for lines in free_nats_lines] == [1, 0, 1]  # on the two KL plots only
    # the control's KL stays within one decade on its log axis: its ticks at 2 and 5 carry numbers
    figure.canvas.draw()
    for ax in axes[:, 3]:
        low, high = ax.get_ylim()
        numbered = [float(label.get_text()) for label in ax.get_yticklabels(minor=False) + ax.get_yticklabels(minor=True)
                    if label.get_text() and low <= label.get_position()[1] <= high]
        assert 2 <= len(numbered) <= 6, (ax.get_ylim(), numbered)
    plt.close(figure)
