"""The lessons' first cell (tools/colab_cell.py): on Colab it installs the course library, and a
failed install prints what to do without raising; elsewhere it does nothing. Offline: Colab is
simulated with a dummy `google.colab` module, the install goes to the local repository."""
from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys
import types

import jupytext
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_workbooks  # noqa: E402

CELL = make_workbooks.COLAB_CELL
URL = "git+https://github.com/dreamer-course/dreamer-course"


@pytest.fixture
def colab(monkeypatch):
    """Pretend to be on Colab, in a runtime where dreamer_lib is not installed yet."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "dreamer_lib" else find_spec(name, *a, **k))


def run_cell(source: str = CELL) -> dict:
    namespace = {"__name__": "__main__"}
    exec(compile(source, "colab_cell", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("lesson", make_workbooks.lessons(), ids=lambda p: p.stem)
def test_every_lesson_starts_with_the_one_colab_cell(lesson):
    first = jupytext.read(lesson).cells[0]
    assert first.cell_type == "code" and first.source == CELL, (
        f"{lesson.name}'s first cell is not tools/colab_cell.py: run python tools/make_workbooks.py")


def test_the_cell_names_one_url_and_installs_only_the_base_package():
    assert CELL.count("https://") == 1 and URL in CELL
    assert "[dmc]" not in CELL and "check=True" not in CELL


def test_outside_colab_the_cell_does_nothing(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)

    def no_run(*args, **kwargs):
        raise AssertionError("the cell ran a command outside Colab")

    monkeypatch.setattr(subprocess, "run", no_run)
    run_cell()
    assert capsys.readouterr().out == ""


def test_on_colab_with_the_library_installed_the_cell_does_nothing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("installed again over an existing install"))
    run_cell()  # dreamer_lib is importable here, as after a zip or local-path install
    assert capsys.readouterr().out == ""


def test_on_colab_the_cell_installs_the_package_with_pip(colab, monkeypatch, tmp_path, capsys):
    """The real pip, on the cell's real command with the URL replaced by this repository: a dry run
    (no dependencies, no index, no build isolation) that must resolve `dreamer-course @ <source>`."""
    calls, real_run, report = [], subprocess.run, tmp_path / "pip-report.json"

    def dry_run(command, **kwargs):
        assert command[:4] == [sys.executable, "-m", "pip", "install"]
        result = real_run([*command, "--dry-run", "--no-deps", "--no-index", "--no-build-isolation",
                           "--report", str(report)], **kwargs)
        calls.append(result)
        return result

    monkeypatch.setattr(subprocess, "run", dry_run)
    run_cell(CELL.replace(URL, ROOT.as_uri()))
    assert len(calls) == 1, "the cell must run pip once"
    assert calls[0].returncode == 0, calls[0].stderr
    would_install = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert would_install == ["dreamer-course"]
    out = capsys.readouterr().out
    assert out.strip() == f"Installed the course library from {ROOT.as_uri()}."


def test_a_failed_install_prints_one_paragraph_and_does_not_raise(colab, monkeypatch, capsys):
    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, stdout="", stderr=(
            "  error: subprocess-exited-with-error\nERROR: Could not find a version that satisfies the requirement\n"
            "fatal: could not read Username for 'https://github.com': No such device or address"))

    monkeypatch.setattr(subprocess, "run", failing_pip)
    run_cell()  # must not raise
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "one paragraph, one printed line"
    for needed in (URL, "fatal: could not read Username", "run this cell again", "Download ZIP",
                   "pip install -q ./dreamer-course-main", "/path/to/dreamer-course"):
        assert needed in out, f"the message lacks {needed!r}:\n{out}"


def test_a_bad_url_with_the_real_pip_prints_the_paragraph(colab, monkeypatch, tmp_path, capsys):
    missing = (tmp_path / "no-such-repository").as_uri()
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: real_run([*command, "--no-index"], **kw))
    run_cell(CELL.replace(URL, missing))
    out = capsys.readouterr().out
    assert out.startswith(f"Could not install the course library from {missing} (pip: ") and "Download ZIP" in out
