"""The course's form: lessons are jupytext pairs that agree, workbooks are current and stop only
at exercises, and code a lesson defines with `# @save dreamer_lib.<module>` is the library's."""
from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import re
import sys
import textwrap

import jupytext
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_workbooks  # noqa: E402

LESSONS = make_workbooks.lessons()
ids = [p.stem for p in LESSONS]


def cells(notebook):
    return [(c.cell_type, c.source.strip()) for c in notebook.cells]


@pytest.mark.parametrize("lesson", LESSONS, ids=ids)
def test_ipynb_is_what_the_py_produces(lesson):
    ipynb = lesson.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing: run jupytext --sync {lesson.name} and execute it"
    assert cells(jupytext.read(ipynb)) == cells(jupytext.read(lesson)), (
        f"{ipynb.name} and {lesson.name} differ: edit the .py, then jupytext --sync and re-execute")


@pytest.mark.parametrize("lesson", LESSONS, ids=ids)
def test_lesson_has_outputs_and_says_its_scale(lesson):
    notebook = jupytext.read(lesson.with_suffix(".ipynb"))
    code = [c for c in notebook.cells if c.cell_type == "code"]
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert outputs, f"{lesson.stem}.ipynb was committed without outputs"
    first_text = next(o.get("text", "") for c in code for o in c.get("outputs", []) if o.get("text"))
    assert "scale:" in first_text and "device:" in first_text, "the first output must name scale and device"


def test_workbooks_are_current():
    assert make_workbooks.main(check=True) == 0, "run: python tools/make_workbooks.py"


def test_strip_solutions_replaces_regions_with_exercise_errors():
    text = "def f(x):\n    # BEGIN SOLUTION 2.1: double x\n    y = 2 * x\n    return y\n    # END SOLUTION\n"
    assert make_workbooks.strip_solutions(text) == (
        'def f(x):\n    raise NotImplementedError("Exercise 2.1: double x")\n')
    with pytest.raises(ValueError, match="not closed"):
        make_workbooks.strip_solutions("# BEGIN SOLUTION 1.1: x\n")


def test_a_line_can_read_differently_in_the_workbook():
    text = "if True:\n    case = LESSON_SEED  # in the workbook: case = WORKBOOK_SEED\n# in the workbook, not a marker\n"
    assert make_workbooks.strip_solutions(text) == "if True:\n    case = WORKBOOK_SEED\n# in the workbook, not a marker\n"


def saved_definitions(lesson: pathlib.Path):
    """(module, name, source) for every top-level def/class in a cell starting `# @save <module>`."""
    for cell in jupytext.read(lesson).cells:
        first = cell.source.split("\n", 1)[0]
        if cell.cell_type == "code" and first.startswith("# @save "):
            module = first.split()[2]
            code = "\n".join(line for line in cell.source.splitlines()
                             if not make_workbooks.BEGIN.match(line) and not make_workbooks.END.match(line))
            for node in ast.parse(code).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    yield module, node.name, ast.get_source_segment(code, node, padded=False)


SAVED = [(lesson.stem, *d) for lesson in LESSONS for d in saved_definitions(lesson)]


@pytest.mark.parametrize("lesson,module,name,source", SAVED, ids=[f"{s[0]}:{s[2]}" for s in SAVED])
def test_saved_code_is_the_library_code(lesson, module, name, source):
    library = inspect.getsource(getattr(importlib.import_module(module), name))
    assert textwrap.dedent(library).strip() == source.strip(), (
        f"{lesson} defines {name} differently from {module}.{name}: a lesson's @save cell and the library "
        "must be the same text (edit both, or copy the cell into the library)")


@pytest.mark.parametrize("lesson", LESSONS, ids=ids)
def test_workbook_stops_only_at_an_exercise(lesson, monkeypatch):
    """Run the workbook's cells in order; the first error must be an exercise's NotImplementedError."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("DREAMER_SCALE", "ci")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(ROOT / "notebooks")
    notebook = jupytext.reads(make_workbooks.workbook(lesson), fmt="ipynb")
    if not any("NotImplementedError" in c.source for c in notebook.cells if c.cell_type == "code"):
        pytest.skip(f"{lesson.stem} has no exercises")
    shell = InteractiveShell.instance()
    try:
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            result = shell.run_cell(cell.source, silent=True)
            error = result.error_before_exec or result.error_in_exec
            if error is not None:
                assert isinstance(error, NotImplementedError) and "Exercise" in str(error), (
                    f"{lesson.stem} workbook failed with {type(error).__name__}: {error} before reaching an exercise")
                return
        pytest.fail(f"{lesson.stem} workbook ran to the end without meeting its exercises")
    finally:
        InteractiveShell.clear_instance()


# "*Time to run:* ci: 3 s, cpu (2 cores): 24 min, gpu: not measured yet" in each lesson's first markdown cell
TIMES = re.compile(r"\*Time to run:\* ci: (?P<ci>[\d.]+ (?:s|min)), cpu \(2 cores\): (?P<cpu>[\d.]+ (?:s|min)), "
                   r"gpu: (?P<gpu>[\d.]+ (?:s|min)|not measured yet)")
RAN = re.compile(r"Lesson \d+ ran in (?P<seconds>\d+) s at scale (?P<scale>\w+)")


def seconds(text: str) -> float:
    number, unit = text.split()
    return float(number) * (60 if unit == "min" else 1)


def stated_times(lesson: pathlib.Path) -> dict:
    first = next(c for c in jupytext.read(lesson).cells if c.cell_type == "markdown")
    match = TIMES.search(first.source.replace("\n", " "))
    assert match, (f"{lesson.name}'s first markdown cell must state its time per scale: "
                   "*Time to run:* ci: N s, cpu (2 cores): M min, gpu: not measured yet")
    return match.groupdict()


@pytest.mark.parametrize("lesson", LESSONS, ids=ids)
def test_lesson_opens_with_times_and_the_glossary_and_ends_with_a_summary(lesson):
    stated_times(lesson)
    markdown = [c.source for c in jupytext.read(lesson).cells if c.cell_type == "markdown"]
    assert "(GLOSSARY.md)" in markdown[0], "link the glossary from the first markdown cell"
    assert (ROOT / "notebooks" / "GLOSSARY.md").exists()
    assert "## Summary" in markdown[-1], f"{lesson.name} must end with a '## Summary'"


def compare_times(stated: dict, last_output: str) -> tuple[str, str]:
    """("ok" | "skip" | "fail", why): is the time stated for the scale of a committed run within 2x
    of the time that run printed last (or within 10 s, for lessons of seconds)? Only cpu and gpu
    runs are compared; ci times are seconds of noise."""
    ran = RAN.search(last_output)
    if not ran:
        return "fail", "the last output must be 'Lesson N ran in X s at scale S'"
    measured, scale = float(ran["seconds"]), ran["scale"]
    if scale == "ci":
        return "skip", ("committed at the ci scale; the stated cpu time is checked once the lesson is "
                        "re-executed at the cpu scale")
    if stated[scale] == "not measured yet":
        return "skip", f"no {scale} time stated yet; the committed {scale} run took {measured:.0f} s"
    if measured / 2 <= seconds(stated[scale]) <= measured * 2 or abs(seconds(stated[scale]) - measured) <= 10:
        return "ok", ""
    return "fail", (f"states {scale}: {stated[scale]}, but its committed {scale} run took {measured:.0f} s: "
                    "update the first markdown cell")


@pytest.mark.parametrize("lesson", LESSONS, ids=ids)
def test_stated_time_matches_the_committed_run(lesson):
    notebook = jupytext.read(lesson.with_suffix(".ipynb"))
    texts = [o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    verdict, why = compare_times(stated_times(lesson), texts[-1] if texts else "")
    if verdict == "skip":
        pytest.skip(f"{lesson.stem}.ipynb: {why}")
    assert verdict == "ok", f"{lesson.stem}: {why}"


def test_compare_times():
    stated = TIMES.search("*Time to run:* ci: 3 s, cpu (2 cores): 24 min, gpu: not measured yet").groupdict()
    assert compare_times(stated, "Lesson 4 ran in 1457 s at scale cpu")[0] == "ok"
    assert compare_times(stated, "Lesson 4 ran in 3100 s at scale cpu")[0] == "fail"
    assert compare_times(stated, "Lesson 4 ran in 600 s at scale cpu")[0] == "fail"
    assert compare_times(stated, "Lesson 4 ran in 12 s at scale ci")[0] == "skip"
    assert compare_times(stated, "Lesson 4 ran in 300 s at scale gpu")[0] == "skip"
    assert compare_times(stated, "no time")[0] == "fail"
    small = TIMES.search("*Time to run:* ci: 2 s, cpu (2 cores): 9 s, gpu: 1.5 min").groupdict()
    assert compare_times(small, "Lesson 0 ran in 18 s at scale cpu")[0] == "ok"  # within 10 s
    assert compare_times(small, "Lesson 0 ran in 200 s at scale gpu")[0] == "fail"
