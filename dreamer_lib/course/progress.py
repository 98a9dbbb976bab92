"""Your progress through the course: every workbook's exercise checks, run on the code you wrote,
in one table.

    from dreamer_lib.course.progress import progress
    progress()                                        # in a notebook (finds notebooks/workbooks)
    python -m dreamer_lib.course.progress [FOLDER]    # from a shell (the same, or FOLDER's)

Each exercise is "passed" (with its check's line), "failing" (with its check's message, the one
its check cell prints), "not started" (its `raise NotImplementedError("Exercise N.k: ...")` is
still in the workbook), or "checked in the notebook" (7.1: its check needs the workbook's run).

The workbooks are read as saved on disk (save yours first), and not run whole: they train agents
for minutes. What runs is what the check cells need: a workbook's import lines, then the cells
that define the exercises' functions and classes (in the workbook's order), then the checks, on
their own small seeded inputs and ci-sized models whatever DREAMER_SCALE says: seconds. So a
function of yours that reads another variable of the notebook (say `config`) fails here with a
NameError: pass it as an argument.
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import linecache
import pathlib
import sys
from typing import NamedTuple

from dreamer_lib.course.checks import CheckFailed, explain_error
from dreamer_lib.course.checks.actor_critic import check_imagine_step
from dreamer_lib.course.checks.buffer import check_sample_windows
from dreamer_lib.course.checks.envs import check_repeat_action
from dreamer_lib.course.checks.later_dreamers import (check_balanced_kl, check_return_scale,
                                                      check_straight_through_sample, check_update_slow_critic)
from dreamer_lib.course.checks.world_model import check_open_loop, check_world_model_step
from dreamer_lib.course.components import DEFINES, EXERCISES, NOTEBOOK_FILES, UNWRITTEN

# Each exercise of the course: the names its cell defines, checked in this order. 7.1 has none
# here: its check needs the mystery run that workbook 7 trains.
COURSE = {
    "0.1": ["repeat_action"],
    "1.1": ["ConvEncoder"], "1.2": ["ConvDecoder"],
    "2.1": ["sample_windows"],
    "3.1": ["kl_divergence"], "3.2": ["kl_loss"], "3.3": ["RSSM"],
    "4.1": ["world_model_step"], "4.2": ["open_loop"],
    "5.1": ["compute_lambda_returns"], "5.2": ["discount_weights", "compute_actor_loss"],
    "5.3": ["compute_critic_loss"], "5.4": ["imagine_step"],
    "6.1": ["updates_due"],
    "7.1": [],
    "8.1": ["straight_through_sample"], "8.2": ["balanced_kl"], "8.3": ["return_scale"], "8.4": ["update_slow_critic"],
}
# The check of each name: the trainer's components with theirs, then the exercises the trainer does not use.
CHECKS = {name: check for name, (_, check) in EXERCISES.items()} | {
    "repeat_action": check_repeat_action, "sample_windows": check_sample_windows,
    "world_model_step": check_world_model_step, "open_loop": check_open_loop, "imagine_step": check_imagine_step,
    "straight_through_sample": check_straight_through_sample, "balanced_kl": check_balanced_kl,
    "return_scale": check_return_scale, "update_slow_critic": check_update_slow_critic}
IN_NOTEBOOK = "checked in the notebook"
WIDTH = 200  # characters of a message in the table; longer ones are printed in full below it


class Row(NamedTuple):
    workbook: str
    exercise: str
    status: str  # passed, failing, not started or IN_NOTEBOOK
    message: str


def find_workbooks(folder=None) -> list[pathlib.Path]:
    """The workbooks in `folder`; by default in the first of ./workbooks, ./notebooks/workbooks and
    . that has any, so yours are found from notebooks/, from the repository's root, and from the
    workbooks folder itself (where Jupyter starts a workbook's kernel)."""
    folders = [pathlib.Path(f) for f in ([folder] if folder else ["workbooks", "notebooks/workbooks", "."])]
    for where in folders:
        if found := sorted(where.glob(NOTEBOOK_FILES)):
            return found
    raise ValueError(f"No workbooks ({NOTEBOOK_FILES}) in {' or '.join(map(str, folders))}. Run this in your "
                     "workbooks folder (notebooks/workbooks), or give it: progress('path/to/workbooks').")


def outcome(function, *args) -> tuple[str, str]:
    """(status, message) of function(*args), its printed lines kept out of the table."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            function(*args)
    except NotImplementedError as blank:  # this exercise's blank, or another's that it calls
        return "not started", str(blank)
    except CheckFailed as failure:
        return "failing", str(failure)
    except Exception as error:
        return "failing", explain_error(error)
    return "passed", printed.getvalue().strip().rpartition("\n")[2]  # a check's last line says what passed


def run_cell(source: str, name: str, namespace: dict) -> None:
    """Run a cell's source as the notebook would; `name` is where its lines show in a traceback."""
    linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)
    exec(compile(source, name, "exec"), namespace)


def imports(cells: list[str]) -> str:
    """Every top-level import statement of the cells (a cell that does not parse has none)."""
    found = []
    for source in cells:
        with contextlib.suppress(SyntaxError):
            found += [node for node in ast.parse(source).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return ast.unparse(ast.Module(found, type_ignores=[]))


def check_workbook(path: pathlib.Path) -> list[Row]:
    """The status of each of the workbook's exercises, in a namespace of its own."""
    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    exercises = [number for number in COURSE if int(number.split(".")[0]) == int(path.stem[:2])]
    names = {name for number in exercises for name in COURSE[number]}
    namespace = {"__name__": "__main__"}  # as in a notebook
    setup = outcome(run_cell, imports(cells), f"{path.name}, its imports", namespace)
    if setup[0] != "passed":
        return [Row(path.stem, number, "failing", f"the workbook's imports fail: {setup[1]}") for number in exercises]
    cell_runs = {}  # name -> (status, message) of running the (last) cell that defines it
    for number, source in enumerate(cells, 1):
        defined = DEFINES.findall(source)
        if names & set(defined):
            ran = outcome(run_cell, source, f"{path.name}, code cell {number}", namespace)
            cell_runs |= dict.fromkeys(defined, ran)
    return [Row(path.stem, number, *exercise_status(number, cells, namespace, cell_runs)) for number in exercises]


def exercise_status(number: str, cells: list[str], namespace: dict, cell_runs: dict) -> tuple[str, str]:
    """(status, message) of one exercise: its blank, then its cell's run, then its checks, in order."""
    if any(f"{UNWRITTEN} {number}:" in source for source in cells):
        return "not started", ""
    if not COURSE[number]:
        return IN_NOTEBOOK, "its check needs the workbook's run: run its check cell there"
    passed = []
    for name in COURSE[number]:
        if name not in cell_runs:
            return "failing", f"no code cell defines {name} (check its spelling: the check cell uses this name)"
        if cell_runs[name][0] != "passed":
            return cell_runs[name][0], f"the cell that defines {name} fails: {cell_runs[name][1]}"
        status, message = outcome(CHECKS[name], namespace[name])
        if status != "passed":
            return status, message
        passed.append(message)
    return "passed", " ".join(passed)


def results(folder=None) -> list[Row]:
    """One row per exercise of the workbooks in `folder` (see find_workbooks), in the course's order."""
    return [row for path in find_workbooks(folder) for row in check_workbook(path)]


def progress(folder=None) -> None:
    """Print the table of results(folder), then each message too long for it, then the count."""
    rows = results(folder)
    width = max((len(row.workbook) for row in rows), default=len("workbook"))
    print(f"{'workbook':<{width}} | exercise | {'status':<{len(IN_NOTEBOOK)}} | message")
    for row in rows:
        message = " ".join(row.message.split())  # one line
        message = message if len(message) <= WIDTH else message[:WIDTH - 3] + "..."
        print(f"{row.workbook:<{width}} | {row.exercise:<8} | {row.status:<{len(IN_NOTEBOOK)}} | {message}")
    for row in rows:
        if len(row.message) > WIDTH:
            print(f"\n{row.workbook}, exercise {row.exercise}, in full:\n{row.message}")
    counted = [row for row in rows if row.status != IN_NOTEBOOK]
    print(f"\n{sum(row.status == 'passed' for row in counted)} of {len(counted)} exercises pass"
          + "".join(f"; {row.exercise} is {IN_NOTEBOOK}" for row in rows if row.status == IN_NOTEBOOK))


if __name__ == "__main__":
    progress(sys.argv[1] if len(sys.argv) > 1 else None)
