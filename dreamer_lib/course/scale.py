"""Helpers for the lessons: pick the run size ("scale") and say what produced the figures.

Scales: "gpu" (paper sizes, picked when CUDA is there), "cpu" (smaller, still learns), "ci"
(tiny, only proves the code runs; nbval uses it). DREAMER_SCALE=gpu|cpu|ci overrides the choice.
Run folders: `runs_dir()`, one root for lessons and workbooks (DREAMER_RUNS overrides it);
`trained_run()`, the trained agent a lesson studies (lesson 6's run, else the shipped model).
"""
from __future__ import annotations

import os
import pathlib
import platform
import time
from dataclasses import dataclass, field

import torch

import dreamer_lib
from dreamer_lib.config import Config, make_config
from dreamer_lib.course.pretrained import available, pretrained

PRESET_OF_SCALE = {"gpu": "paper", "cpu": "cpu", "ci": "ci"}


@dataclass
class Scale:
    name: str
    device: torch.device
    config: Config
    started: float = field(default_factory=time.time)

    def pick(self, gpu, cpu, ci):
        """The value for this scale: `steps = scale.pick(gpu=2000, cpu=300, ci=5)`."""
        return {"gpu": gpu, "cpu": cpu, "ci": ci}[self.name]

    def elapsed(self) -> str:
        return f"{time.time() - self.started:.0f} s"


def pick_scale() -> str:
    name = os.environ.get("DREAMER_SCALE") or ("gpu" if torch.cuda.is_available() else "cpu")
    if name not in PRESET_OF_SCALE:
        raise ValueError(f"DREAMER_SCALE={name!r}: use one of gpu, cpu, ci.")
    return name


def setup(lesson: str, seed: int = 0) -> Scale:
    """Seed everything and print the line that says what produced this notebook's outputs."""
    name = pick_scale()
    if name == "gpu" and not torch.cuda.is_available():
        raise ValueError("DREAMER_SCALE=gpu needs a CUDA GPU; use cpu or ci here.")
    device = torch.device("cuda" if name == "gpu" else "cpu")
    show_figures_inline()
    torch.manual_seed(seed)
    config = make_config(PRESET_OF_SCALE[name], device=device.type, seed=seed)
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.machine()} CPU, {os.cpu_count()} cores"
    print(f"{lesson} | scale: {name} (preset {config.preset}) | device: {where} | dreamer_lib {dreamer_lib.__version__} "
          f"| torch {torch.__version__} | {time.strftime('%Y-%m-%d')}")
    return Scale(name, device, config)


def show_figures_inline() -> None:
    """In a notebook, figures show inline whatever MPLBACKEND says: headless servers often set
    Agg, under which plt.show() displays nothing (and nbval's checked figures go missing)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")


def runs_dir() -> pathlib.Path:
    """The one folder that holds the lessons' run folders, for lessons and workbooks alike.

    DREAMER_RUNS=PATH sets it. Otherwise it is `runs` next to the lessons, found from the current
    directory (Jupyter starts a notebook's kernel in the notebook's folder): in notebooks/ it is
    notebooks/runs, and in notebooks/workbooks/ it is the same notebooks/runs, so a workbook finds
    the run its lesson wrote. Anywhere else (Colab: /content) it is ./runs. Relative to the current
    directory (so printed paths read the same on every machine), unless DREAMER_RUNS is set."""
    if os.environ.get("DREAMER_RUNS"):
        return pathlib.Path(os.environ["DREAMER_RUNS"]).expanduser().resolve()
    return pathlib.Path("../runs" if pathlib.Path.cwd().name == "workbooks" else "runs")


def trained_run() -> pathlib.Path | None:
    """The trained agent a lesson studies: lesson 6's run (`runs_dir() / "lesson6"`) once it has a
    checkpoint, so a learner's own run comes first; else the model that ships with the course
    (`pretrained("pendulum-cpu")`); else None, and the lesson trains a tiny stand-in. Either
    folder loads with `evaluate.load_agent` and holds `episodes/`."""
    lesson6 = runs_dir() / "lesson6"
    if (lesson6 / "checkpoint.pt").exists():
        return lesson6
    return pretrained("pendulum-cpu") if "pendulum-cpu" in available() else None
