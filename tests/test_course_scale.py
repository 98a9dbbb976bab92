"""course.scale: one run-folder root for lessons and workbooks, and the scale choice."""
from __future__ import annotations

import pytest

from dreamer_lib.course import scale


def test_runs_dir_is_next_to_the_lessons_from_lessons_and_workbooks(tmp_path, monkeypatch):
    monkeypatch.delenv("DREAMER_RUNS", raising=False)
    (tmp_path / "notebooks" / "workbooks").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "notebooks")
    assert scale.runs_dir().resolve() == (tmp_path / "notebooks" / "runs").resolve()
    monkeypatch.chdir(tmp_path / "notebooks" / "workbooks")
    assert scale.runs_dir().resolve() == (tmp_path / "notebooks" / "runs").resolve(), "a workbook must find its lesson's runs"
    monkeypatch.chdir(tmp_path)  # anywhere else (Colab's /content): ./runs
    assert scale.runs_dir().resolve() == (tmp_path / "runs").resolve()
    assert not scale.runs_dir().is_absolute()  # printed paths read the same on every machine


def test_runs_dir_env_var_overrides(tmp_path, monkeypatch):
    (tmp_path / "notebooks" / "workbooks").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "notebooks" / "workbooks")
    monkeypatch.setenv("DREAMER_RUNS", str(tmp_path / "elsewhere"))
    assert scale.runs_dir() == (tmp_path / "elsewhere").resolve()
    monkeypatch.setenv("DREAMER_RUNS", "")  # empty means unset
    assert scale.runs_dir().resolve() == (tmp_path / "notebooks" / "runs").resolve()


def test_pick_scale(monkeypatch):
    monkeypatch.setenv("DREAMER_SCALE", "ci")
    assert scale.pick_scale() == "ci"
    monkeypatch.setenv("DREAMER_SCALE", "huge")
    with pytest.raises(ValueError, match="gpu, cpu, ci"):
        scale.pick_scale()
