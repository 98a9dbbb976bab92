"""The course's progress table (dreamer_lib/course/progress.py): every workbook's checks run on the
learner's cells as saved, one row per exercise."""
from __future__ import annotations

import json
import pathlib
import re
import shutil

import pytest

from dreamer_lib.course import progress as course_progress
from dreamer_lib.course.progress import CHECKS, COURSE, IN_NOTEBOOK, Row, find_workbooks, progress, results

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKBOOKS = ROOT / "notebooks" / "workbooks"


def solution(number: str) -> str:
    """The lesson's code for exercise `number`: the inside of its solution region, indented as there."""
    lesson = next((ROOT / "notebooks").glob(f"0{number[0]}_*.py")).read_text()
    return re.search(rf"# BEGIN SOLUTION {re.escape(number)}: [^\n]*\n(.*?)\n *# END SOLUTION", lesson, re.S).group(1)


def fill(workbook: pathlib.Path, number: str, code: str) -> None:
    """Write `code` in place of the workbook's blank line for exercise `number`, as a learner would."""
    notebook = json.loads(workbook.read_text())
    for cell in notebook["cells"]:
        cell["source"] = re.sub(rf'^ *raise NotImplementedError\("Exercise {re.escape(number)}:.*$',
                                lambda _: code, "".join(cell["source"]), flags=re.M)
    workbook.write_text(json.dumps(notebook))


def copy_workbooks(folder: pathlib.Path, *names: str) -> dict[str, pathlib.Path]:
    return {name: pathlib.Path(shutil.copy(WORKBOOKS / f"{name}.ipynb", folder)) for name in names}


def test_the_table_says_passed_failing_and_not_started(tmp_path, capsys):
    copies = copy_workbooks(tmp_path, "03_rssm", "05_actor_critic")
    fill(copies["03_rssm"], "3.1", solution("3.1"))
    fill(copies["03_rssm"], "3.2", "    kl = kl_divergence(posterior, prior).mean()\n    return kl, kl  # no free nats")
    rows = results(tmp_path)
    assert [(row.workbook, row.exercise, row.status) for row in rows] == [
        ("03_rssm", "3.1", "passed"), ("03_rssm", "3.2", "failing"), ("03_rssm", "3.3", "not started"),
        ("05_actor_critic", "5.1", "not started"), ("05_actor_critic", "5.2", "not started"),
        ("05_actor_critic", "5.3", "not started"), ("05_actor_critic", "5.4", "not started")]
    assert rows[0].message.startswith("Exercise 3.1 passed: ")  # the check's own line
    assert rows[1].message.startswith("Exercise 3.2: the loss is 2.5") and "clamp is missing" in rows[1].message

    progress(tmp_path)
    printed = capsys.readouterr().out.splitlines()
    table = [[column.strip() for column in line.split(" | ")] for line in printed[:8]]
    assert table[0] == ["workbook", "exercise", "status", "message"]
    assert table[2][:3] == ["03_rssm", "3.2", "failing"] and table[2][3] == rows[1].message
    assert printed[-1] == "1 of 7 exercises pass"


def test_long_messages_are_cut_in_the_table_and_printed_in_full_below_it(monkeypatch, capsys):
    long = "Exercise 5.1: " + "x" * 300
    rows = [Row("05_actor_critic", "5.1", "failing", long), Row("07_imagination_debugger", "7.1", IN_NOTEBOOK, "")]
    monkeypatch.setattr(course_progress, "results", lambda folder: rows)
    progress()
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].endswith(" | " + long[:197] + "...")
    assert printed[3:] == ["", "05_actor_critic, exercise 5.1, in full:", long, "",
                           "0 of 1 exercises pass; 7.1 is checked in the notebook"]


def test_a_written_exercise_that_calls_a_blank_one_names_it(tmp_path):
    fill(copy_workbooks(tmp_path, "03_rssm")["03_rssm"], "3.2", solution("3.2"))  # 3.2 calls 3.1's kl_divergence
    row = results(tmp_path)[1]
    assert (row.exercise, row.status) == ("3.2", "not started") and row.message.startswith("Exercise 3.1: ")


def test_a_cell_that_does_not_run_is_failing_with_its_error(tmp_path):
    fill(copy_workbooks(tmp_path, "03_rssm")["03_rssm"], "3.1", "    return (q.mean - p.mean")
    row = results(tmp_path)[0]
    assert (row.exercise, row.status) == ("3.1", "failing")
    assert row.message.startswith("the cell that defines kl_divergence fails: SyntaxError: ")
    assert "03_rssm.ipynb, code cell " in row.message  # where


def test_the_committed_workbooks_are_not_started():
    assert {row.status for row in results(WORKBOOKS)} == {"not started"}


def test_the_course_table_is_the_lessons_exercises_and_their_check_cells():
    """(exercise, check, name) of each check call in the lessons, the exercise being the solution above it."""
    calls, number = [], None
    for lesson in sorted((ROOT / "notebooks").glob("0[0-9]_*.py")):
        for line in lesson.read_text().splitlines():
            if begin := re.search(r"# BEGIN SOLUTION (\d+\.\d+):", line):
                number = begin.group(1)
            elif call := re.match(r"(check_\w+)\((\w+)", line):
                calls.append((number, *call.groups()))
    # 7.1 is checked in its notebook: COURSE has no name for it
    assert calls == [(number, CHECKS[name].__name__, name) if names else (number, "check_diagnosis", "diagnosis")
                     for number, names in COURSE.items() for name in (names or [None])]


@pytest.mark.parametrize("cwd", ["", "notebooks", "notebooks/workbooks"])
def test_the_workbooks_are_found_from_the_root_the_lessons_and_the_workbooks(cwd, monkeypatch):
    monkeypatch.chdir(ROOT / cwd)
    assert [path.resolve() for path in find_workbooks()] == sorted(WORKBOOKS.glob("0[0-9]_*.ipynb"))


def test_a_folder_without_workbooks_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"No workbooks .* in workbooks or notebooks/workbooks or \.\. Run this in"):
        progress()
