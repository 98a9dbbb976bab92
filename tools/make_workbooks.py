"""Generate the learners' workbooks from the lessons:  python tools/make_workbooks.py [--check]

notebooks/NN_topic.py (the lesson, with solutions) -> notebooks/workbooks/NN_topic.ipynb.
Each solution region

        # BEGIN SOLUTION 1.2: what to do
        ...reference code...
        # END SOLUTION

becomes `raise NotImplementedError("Exercise 1.2: what to do")` at the same indentation; the
check cells that follow stay. A line that ends in a comment `# in the workbook: CODE` becomes
CODE, at the same indentation (lesson 7's mystery: the workbook gets another case than the one
the lesson's page solves). Outputs are not copied: a workbook is for the learner to run.
--check exits 1 if a committed workbook is not what the lessons generate (tests run this).

It also keeps the Colab cell in one place: every lesson's first cell is tools/colab_cell.py, word
for word. Without --check this script writes that file into the first cell of each lesson (.py and
.ipynb, outputs kept) before generating the workbooks; with --check a lesson whose first cell
differs fails too. So the repository URL and the install logic are edited in one file.
"""
from __future__ import annotations

import json
import pathlib
import re
import sys

import jupytext
import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION (\d+\.\d+): (.*)$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
IN_WORKBOOK = re.compile(r"^(\s*)\S.*?# in the workbook: (.+)$")
COLAB_CELL = (ROOT / "tools" / "colab_cell.py").read_text().rstrip("\n")
HEADER = ("**Workbook.** This is the exercise version of [the lesson](../{name}.ipynb): wherever you meet "
          "`NotImplementedError`, write the code; the check cell after each exercise compares your code with the "
          "reference and tells you what is wrong. Run the cells in order.\n#\n"
          "# To iterate fast, start Jupyter with the tiny scale, `DREAMER_SCALE=ci jupyter lab` (every cell then "
          "runs in seconds and the checks are the same; the pictures only prove that the code runs), and run once "
          "more without it for the real pictures. Run folders go to `notebooks/runs`, shared with the lessons "
          "(`DREAMER_RUNS` moves them).")


def lessons() -> list[pathlib.Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def strip_solutions(text: str) -> str:
    out, inside = [], False
    for number, line in enumerate(text.splitlines(), 1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ValueError(f"line {number}: BEGIN SOLUTION inside another solution region")
            indent, exercise, task = begin.groups()
            out.append(f"{indent}raise NotImplementedError({json.dumps(f'Exercise {exercise}: {task}')})")
            inside = True
        elif END.match(line):
            if not inside:
                raise ValueError(f"line {number}: END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            replaced = IN_WORKBOOK.match(line)
            out.append("".join(replaced.groups()) if replaced else line)
    if inside:
        raise ValueError("a solution region is not closed with # END SOLUTION")
    return "\n".join(out) + "\n"


def workbook(lesson: pathlib.Path) -> str:
    text = strip_solutions(lesson.read_text()).replace("](GLOSSARY.md)", "](../GLOSSARY.md)")  # one folder down
    notebook = jupytext.reads(text, fmt="py:percent")
    notebook.cells.insert(0, jupytext.reads(f"# %% [markdown]\n# {HEADER.format(name=lesson.stem)}\n",
                                            fmt="py:percent").cells[0])
    for number, cell in enumerate(notebook.cells):
        cell.id = f"{lesson.stem[:2]}-{number:03d}"  # stable ids, so regenerating changes nothing
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return jupytext.writes(notebook, fmt="ipynb")


def first_cell(lesson: pathlib.Path) -> str:
    return jupytext.read(lesson).cells[0].source


def write_colab_cell(lesson: pathlib.Path) -> bool:
    """Make the lesson's first cell (in the .py and, if present, the .ipynb) COLAB_CELL; True if it changed."""
    if first_cell(lesson) == COLAB_CELL:
        return False
    lines = lesson.read_text().split("\n")
    if lines[0] != "# %%":
        raise ValueError(f"{lesson.name} must start with a code cell (# %%), the Colab cell")
    end = next(i for i in range(1, len(lines)) if lines[i].startswith("# %%"))
    lesson.write_text("\n".join(["# %%", COLAB_CELL, "", *lines[end:]]))
    ipynb = lesson.with_suffix(".ipynb")
    if ipynb.exists():
        notebook = nbformat.read(ipynb, as_version=4)
        notebook.cells[0].source = COLAB_CELL
        nbformat.write(notebook, ipynb)
    return True


def main(check: bool = False) -> int:
    stale = []
    for lesson in lessons():
        if check and first_cell(lesson) != COLAB_CELL:
            stale.append(lesson.relative_to(ROOT))
        elif not check and write_colab_cell(lesson):
            print(f"wrote tools/colab_cell.py into the first cell of {lesson.relative_to(ROOT)} (and its .ipynb)")
        target = NOTEBOOKS / "workbooks" / f"{lesson.stem}.ipynb"
        text = workbook(lesson)
        if check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.relative_to(ROOT))
        else:
            target.parent.mkdir(exist_ok=True)
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("Workbooks or lessons' Colab cells out of date (run python tools/make_workbooks.py): "
              + ", ".join(map(str, stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv))
