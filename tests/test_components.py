"""Your own code in the real trainer: components files, their checks, the agent's parts they fill
(dreamer_lib/course/components.py, agent.Parts) and `dreamer-train --components`."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import types

import IPython
import pytest
import torch

from dreamer_lib import cli
from dreamer_lib.actor_critic import compute_lambda_returns
from dreamer_lib.agent import Parts
from dreamer_lib.config import make_config
from dreamer_lib.course import components as course_components
from dreamer_lib.course.components import EXERCISES, ComponentRejected, load_components, load_parts, write_components
from dreamer_lib.train import Trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A learner's lambda-returns as a plain loop (equation 6), noting the shape of every call in a file.
LOOP_RETURNS = textwrap.dedent('''
    import torch
    from dreamer_lib.rssm import kl_loss  # the library's: not a component of this file


    def compute_lambda_returns(rewards, values, discounts, bootstrap, lambda_=0.95):
        with open(__file__ + ".calls", "a") as calls:
            calls.write(f"{tuple(rewards.shape)}\\n")
        out, last = [], bootstrap
        for t in reversed(range(rewards.shape[0])):
            next_value = values[t + 1] if t + 1 < rewards.shape[0] else bootstrap
            last = rewards[t] + discounts[t] * ((1 - lambda_) * next_value + lambda_ * last)
            out.append(last)
        return torch.stack(out[::-1])
''')
# A learner's KL of exercise 3.1, as the lesson writes it.
KL_DIVERGENCE = ("def kl_divergence(q, p):\n"
                 "    var_ratio = (q.std / p.std).pow(2)\n    mean_term = ((q.mean - p.mean) / p.std).pow(2)\n"
                 "    return 0.5 * (var_ratio + mean_term - 1 - var_ratio.log()).sum(-1)\n")
# The same, bootstrapping with values[-1] (a mistake the lambda-return check names).
WRONG_RETURNS = LOOP_RETURNS.replace("else bootstrap", "else values[-1]").replace("out, last = [], bootstrap",
                                                                                  "out, last = [], values[-1]")


def write(tmp_path, text, name="mine.py") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def tiny(**changes):
    return make_config("ci", **{"total_frames": 600, "eval_every": 10_000, **changes})


def test_load_finds_the_names_the_file_defines_not_those_it_imports(tmp_path):
    found = load_components(write(tmp_path, LOOP_RETURNS))
    assert list(found) == ["compute_lambda_returns"]
    r, v, d = torch.randn(3, 4, 2).unbind(0)
    b = torch.randn(2)
    expected = r[3] + d[3] * b  # H = 4; lambda = 0, last step: r + d * bootstrap
    assert torch.allclose(found["compute_lambda_returns"](r, v, d, b, 0.0)[3], expected)


@pytest.mark.parametrize("text, words", [
    (None, "no such file"),
    ("def compute_lambda_returns(:\n", "fails when it runs: SyntaxError"),
    ("import not_a_module_anywhere\n", "fails when it runs: ModuleNotFoundError"),
    ("def lambda_returns(r, v, d, b, l):\n    return r\n", "defines none of the exercise names"),
])
def test_load_names_what_is_wrong_with_the_file(tmp_path, text, words):
    path = tmp_path / "mine.py" if text is None else write(tmp_path, text)
    with pytest.raises(ValueError, match=words) as error:
        load_components(path)
    assert "mine.py" in str(error.value)


def test_load_parts_puts_the_checked_functions_in_the_agents_parts(tmp_path):
    path = write(tmp_path, LOOP_RETURNS)
    parts = load_parts(path)
    assert parts.lambda_returns.__module__ == "components_mine" and parts.source == path
    assert dataclasses.replace(parts, lambda_returns=Parts.lambda_returns, source=None) == Parts()
    assert Parts().lambda_returns is compute_lambda_returns  # the library's own module is untouched


def test_every_exercise_name_fills_a_part_and_has_a_check():
    fields = {f.name for f in dataclasses.fields(Parts)} - {"source"}
    assert {part for part, _ in EXERCISES.values() if part} == fields
    assert all(callable(check) for _, check in EXERCISES.values())


def test_a_kl_divergence_without_kl_loss_is_checked_and_said_to_be_unused(tmp_path, capsys):
    text = "from dreamer_lib.rssm import RSSMState\n\n\n" + KL_DIVERGENCE
    assert load_parts(write(tmp_path, text)).kl_loss is Parts().kl_loss
    assert "the library's kl_loss" in capsys.readouterr().out


def test_a_file_that_exits_is_bad_input_not_a_silent_success(tmp_path):
    with pytest.raises(ValueError, match="fails when it runs: SystemExit"):
        load_components(write(tmp_path, "import sys\nsys.exit(0)\n"))


def test_the_trainer_learns_with_the_learners_function_and_keeps_a_copy(tmp_path):
    path = write(tmp_path, LOOP_RETURNS)
    run = tmp_path / "run"
    rows = course_components.train(path, tiny(), run, progress=False)
    assert rows and (run / "components.py").read_text() == LOOP_RETURNS
    c = tiny()
    shapes = (path.parent / "mine.py.calls").read_text().splitlines()
    in_training = [s for s in shapes if s in (f"({c.horizon - 1}, {c.batch_size * (c.seq_len - n)})" for n in (0, 1))]
    assert len(in_training) == int(rows[-1]["updates"]) > 0, shapes  # once per update: the trainer called it


def test_a_wrong_function_is_refused_with_its_check_and_nothing_is_written(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ComponentRejected) as error:
        course_components.train(write(tmp_path, WRONG_RETURNS), tiny(), run, progress=False)
    message = str(error.value)
    assert message.startswith("compute_lambda_returns from ") and "Exercise 5.1" in message
    assert "values[-1]" in message or "bootstrap" in message, message
    assert not run.exists()


def test_an_unwritten_blank_is_refused_by_name(tmp_path):
    blank = 'def compute_critic_loss(values, lambda_returns, discounts):\n    raise NotImplementedError("Exercise 5.3: x")\n'
    with pytest.raises(ComponentRejected, match="compute_critic_loss from .* is not written yet"):
        course_components.check_components(load_components(write(tmp_path, blank)), "mine.py")


def test_a_run_trained_with_components_does_not_resume_with_the_librarys_parts(tmp_path):
    run = tmp_path / "run"
    course_components.train(write(tmp_path, LOOP_RETURNS), tiny(total_frames=500), run, progress=False)
    with pytest.raises(ValueError, match="trained with your own code"):
        Trainer(tiny(total_frames=700), run, progress=False)


def test_the_lessons_save_cells_make_a_components_file_that_passes_every_check(tmp_path):
    lessons = sorted((ROOT / "notebooks").glob("0[0-9]_*.ipynb"))
    path = write_components(tmp_path / "solutions.py", lessons)
    components = load_components(path)
    assert set(components) == set(EXERCISES), set(EXERCISES) - set(components)
    course_components.check_components(components, path)


def test_write_components_leaves_out_cells_with_blanks(tmp_path):
    def cell(source):
        return {"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}
    filled = "# @save dreamer_lib.actor_critic\n" + LOOP_RETURNS.split("component of this file")[1]
    blank = ('# @save dreamer_lib.actor_critic\ndef compute_critic_loss(values, lambda_returns, discounts):\n'
             '    raise NotImplementedError("Exercise 5.3: x")\n')
    notebook = {"cells": [cell(filled), cell(blank), cell("print('not saved')")], "metadata": {}, "nbformat": 4,
                "nbformat_minor": 5}
    workbook = tmp_path / "05_actor_critic.ipynb"
    workbook.write_text(json.dumps(notebook))
    components = load_components(write_components(tmp_path / "mine.py", [workbook]))
    assert list(components) == ["compute_lambda_returns"]
    course_components.check_components(components)


def test_with_no_notebooks_on_disk_the_kernels_last_run_of_each_cell_is_written(tmp_path, monkeypatch, capsys):
    def saved(module, code):
        return f"# @save dreamer_lib.{module}\n{code}"
    blank = ('def compute_critic_loss(values, lambda_returns, discounts):\n'
             '    raise NotImplementedError("Exercise 5.3: x")\n')
    history = ["", saved("actor_critic", WRONG_RETURNS.split("component of this file")[1]),
               saved("rssm", KL_DIVERGENCE), "print('not saved')", saved("actor_critic", blank),
               saved("actor_critic", LOOP_RETURNS.split("component of this file")[1])]  # In [5]: In [1] fixed
    monkeypatch.setattr(IPython, "get_ipython", lambda: types.SimpleNamespace(user_ns={"In": history}))
    monkeypatch.chdir(tmp_path)  # as on Colab: the notebooks are not on disk
    path = write_components(tmp_path / "mine.py", sorted(pathlib.Path(".").glob("0[0-9]_*.ipynb")))  # as lesson 6
    assert capsys.readouterr().out == (f"Wrote {path} from this kernel's history: 2 cell(s) with your code "
                                       "(In [5]: actor_critic, In [2]: rssm); left out 1 with blanks still to fill.\n")
    text = path.read_text()
    assert text.index("def compute_lambda_returns") < text.index("def kl_divergence")  # the order first run
    components = load_components(path)
    assert list(components) == ["compute_lambda_returns", "kl_divergence"]
    course_components.check_components(components)  # the fixed lambda-returns, not the wrong first run


def test_with_no_notebooks_and_no_kernel_write_components_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"found no notebooks .* in .*not a Jupyter kernel.*notebooks=\[\.\.\.\]"):
        write_components(tmp_path / "mine.py")
    assert not (tmp_path / "mine.py").exists()


def test_the_command_refuses_a_wrong_component_with_exit_2(tmp_path):
    command = [str(pathlib.Path(sys.executable).with_name("dreamer-train")), "--components",
               str(write(tmp_path, WRONG_RETURNS)), "--preset", "ci", "--logdir", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr
    assert "error: compute_lambda_returns from" in done.stderr and "Exercise 5.1" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_resume_uses_the_runs_own_copy_of_the_components(tmp_path, capsys):
    path = write(tmp_path, LOOP_RETURNS)
    run = tmp_path / "run"
    course_components.train(path, tiny(total_frames=500), run, progress=False)
    path.unlink()  # the learner's file is gone; the run keeps its copy
    assert cli.train(["--resume", str(run), "--total-frames", "700", "--no-progress"]) == 0
    assert f"from {run / 'components.py'}" in capsys.readouterr().out
    assert int(read_rows(run / "eval.csv")[-1]["env_frames"]) >= 700
    calls = (run / "components.py.calls").read_text().splitlines()  # the copy's own __file__ counts now
    assert len([s for s in calls if s.startswith(f"({tiny().horizon - 1}, ")]) > 0
