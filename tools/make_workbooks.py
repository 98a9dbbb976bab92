"""Generate the learners' workbooks from the lessons:  python tools/make_workbooks.py [--check]

notebooks/NN_topic.py (the lesson, with solutions) -> notebooks/workbooks/NN_topic.ipynb.
Each solution region

        # BEGIN SOLUTION 1.2: what to do
        ...reference code...
        # END SOLUTION

becomes `raise NotImplementedError("Exercise 1.2: what to do")` at the same indentation; the
check cells that follow stay. Outputs are not copied: a workbook is for the learner to run.
--check exits 1 if a committed workbook is not what the lessons generate (tests run this).
"""
from __future__ import annotations

import json
import pathlib
import re
import sys

import jupytext

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION (\d+\.\d+): (.*)$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
HEADER = ("**Workbook.** This is the exercise version of [the lesson](../{name}.ipynb): wherever you meet "
          "`NotImplementedError`, write the code; the check cell after each exercise compares your code with the "
          "reference and tells you what is wrong. Run the cells in order.")


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
            out.append(line)
    if inside:
        raise ValueError("a solution region is not closed with # END SOLUTION")
    return "\n".join(out) + "\n"


def workbook(lesson: pathlib.Path) -> str:
    notebook = jupytext.reads(strip_solutions(lesson.read_text()), fmt="py:percent")
    notebook.cells.insert(0, jupytext.reads(f"# %% [markdown]\n# {HEADER.format(name=lesson.stem)}\n",
                                            fmt="py:percent").cells[0])
    for number, cell in enumerate(notebook.cells):
        cell.id = f"{lesson.stem[:2]}-{number:03d}"  # stable ids, so regenerating changes nothing
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return jupytext.writes(notebook, fmt="ipynb")


def main(check: bool = False) -> int:
    stale = []
    for lesson in lessons():
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
        print("Workbooks out of date (run python tools/make_workbooks.py): " + ", ".join(map(str, stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv))
