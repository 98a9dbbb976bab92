"""Two layers: the algorithm (dreamer_lib/) and the course (dreamer_lib/course/) on top of it.
No module of the algorithm may import the course, in any form. One file joins them: cli.py, the
console commands (`dreamer-train --components` runs the course's exercise checks), which no
module of either layer imports."""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "dreamer_lib"
COURSE = LIBRARY / "course"
ENTRY_POINTS = LIBRARY / "cli.py"
ALGORITHM = sorted(p for p in LIBRARY.rglob("*.py") if COURSE not in p.parents and p != ENTRY_POINTS)


def course_imports(source: str, package: str = "dreamer_lib", filename: str = "<string>") -> list[tuple[int, str]]:
    """(line, statement) for every import of dreamer_lib.course in `source`, at any depth (also
    inside functions): `import dreamer_lib.course[.x]`, `from dreamer_lib.course[.x] import ...`,
    `from dreamer_lib import course`, and relative forms (`from . import course`, `from .course ...`)
    resolved against `package`, the package the module belongs to."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(name == "dreamer_lib.course" or name.startswith("dreamer_lib.course.") for name in names):
            found.append((node.lineno, ast.get_source_segment(source, node)))
    return found


def test_the_algorithm_modules_are_found():
    names = {p.name for p in ALGORITHM}
    assert {"agent.py", "rssm.py", "train.py", "viz.py", "run_folder.py"} <= names, names
    assert not any(p.is_relative_to(COURSE) for p in ALGORITHM)


@pytest.mark.parametrize("module", ALGORITHM, ids=[str(p.relative_to(ROOT)) for p in ALGORITHM])
def test_the_algorithm_does_not_import_the_course(module):
    package = ".".join(module.parent.relative_to(ROOT).parts)
    found = course_imports(module.read_text(), package, str(module))
    assert not found, "\n".join(
        f"{module.relative_to(ROOT)}:{line} imports the course layer: {statement!r}. The algorithm "
        "(dreamer_lib outside dreamer_lib/course) must not depend on the lessons' scaffolding: move what it "
        "needs into the algorithm, or the caller into dreamer_lib/course." for line, statement in found)


@pytest.mark.parametrize("source", [
    "import dreamer_lib.course",
    "import dreamer_lib.course.checks.rssm as r",
    "from dreamer_lib.course import pictures",
    "from dreamer_lib.course.scale import setup",
    "from dreamer_lib import viz, course",
    "def f():\n    from dreamer_lib import course\n",
    "from . import course",
    "from .course.checks import fail",
])
def test_every_form_of_import_is_caught(source):
    assert course_imports(source), source


@pytest.mark.parametrize("source", [
    "import dreamer_lib.viz",
    "from dreamer_lib import viz",
    "from dreamer_lib.courses import x",
    "from . import rssm",
    "course = 1",
])
def test_other_imports_pass(source):
    assert not course_imports(source), source


@pytest.mark.parametrize("module", sorted(LIBRARY.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_imports_the_entry_points(module):
    """cli.py may reach the course; anything that imported it would reach the course through it."""
    for node in ast.walk(ast.parse(module.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [f"{node.module or ''}.{a.name}" for a in node.names] + [node.module or ""]
                 if isinstance(node, ast.ImportFrom) else [])
        assert not any(n in ("dreamer_lib.cli", ".cli") or n.startswith("dreamer_lib.cli.") for n in names), (
            f"{module.relative_to(ROOT)}:{node.lineno} imports dreamer_lib.cli, the console entry points")
