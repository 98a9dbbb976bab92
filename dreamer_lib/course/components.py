"""Train the real agent with your own code: collect your exercise solutions into a components
file, check each one, and train with them as the agent's parts (agent.Parts).

    from dreamer_lib.course.components import write_components, train
    write_components("my_dreamer.py")                  # run in notebooks/workbooks: your @save cells
                                                       # (on Colab: those run in this notebook's kernel)
    train("my_dreamer.py", make_config("ci"), "runs/mine")

or, from a shell, `dreamer-train --components my_dreamer.py` (the same checks, then the trainer).
A wrong function is refused with its check's message: an hour of training with a subtly wrong
return says nothing about why it failed. `dreamer-eval` and the lessons' pictures use the
library's code.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib
import re

from dreamer_lib.agent import Parts
from dreamer_lib.config import Config
from dreamer_lib.course.checks import CheckFailed
from dreamer_lib.course.checks.actor_critic import (check_actor_loss, check_critic_loss, check_discount_weights,
                                                    check_lambda_returns)
from dreamer_lib.course.checks.networks import check_conv_decoder, check_conv_encoder
from dreamer_lib.course.checks.rssm import check_kl_divergence, check_kl_loss, check_rssm_step
from dreamer_lib.course.checks.train import check_updates_due
from dreamer_lib.train import Trainer

# Each exercise name a components file may define: the part of the agent it fills (None: used
# only through another of the file's functions) and its exercise check.
EXERCISES = {
    "ConvEncoder": ("encoder", check_conv_encoder),  # lesson 1
    "ConvDecoder": ("decoder", check_conv_decoder),
    "kl_divergence": (None, check_kl_divergence),  # lesson 3: your kl_loss calls it
    "kl_loss": ("kl_loss", check_kl_loss),
    "RSSM": ("rssm", check_rssm_step),
    "compute_lambda_returns": ("lambda_returns", check_lambda_returns),  # lesson 5
    "discount_weights": ("discount_weights", check_discount_weights),
    "compute_actor_loss": ("actor_loss", check_actor_loss),
    "compute_critic_loss": ("critic_loss", check_critic_loss),
    "updates_due": ("updates_due", check_updates_due),  # lesson 6
}
SAVE = "# @save dreamer_lib."  # the first line of a cell that holds a piece of the library (lesson 1)
UNWRITTEN = 'raise NotImplementedError("Exercise'  # a blank the learner has not filled in yet
NOTEBOOK_FILES = "0[0-9]_*.ipynb"  # the lessons' and the workbooks' file names
DEFINES = re.compile(r"^(?:def|class)\s+(\w+)", re.MULTILINE)  # the functions and classes a cell defines


class ComponentRejected(ValueError):
    """A components file's function failed its exercise check: the trainer does not start."""


def load_components(path: str | pathlib.Path) -> dict[str, object]:
    """Run the file once, as a module of its own, and return the exercise names it defines itself
    (a name it imports from dreamer_lib is the library's, not a component)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"--components {path}: no such file. Give a Python file that defines some of: "
                         f"{', '.join(EXERCISES)}.")
    spec = importlib.util.spec_from_file_location(f"components_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # a file that calls sys.exit must not end the trainer silently
        raise ValueError(f"--components {path} fails when it runs: {type(error).__name__}: {error}. Run "
                         f"`python {path}` to see where, fix it, and start again.") from None
    found = {name: value for name, value in vars(module).items()
             if name in EXERCISES and getattr(value, "__module__", None) == module.__name__}
    if not found:
        raise ValueError(f"--components {path} defines none of the exercise names the trainer can use: "
                         f"{', '.join(EXERCISES)}. Define one of them (spelt the same) in the file.")
    return found


def check_components(components: dict[str, object], source="your components") -> None:
    """Run each component's exercise check; the first that fails stops everything, by name."""
    for name, component in components.items():
        try:
            EXERCISES[name][1](component)
        except NotImplementedError as blank:
            raise ComponentRejected(f"{name} from {source} is not written yet ({blank}). Write it, or delete it "
                                    "from the file to train with the library's.") from None
        except CheckFailed as failure:
            raise ComponentRejected(f"{name} from {source} failed its check, so training did not start. "
                                    f"{failure}") from None


def load_parts(path: str | pathlib.Path) -> Parts:
    """The agent's parts with the file's checked functions in place of the library's."""
    path = pathlib.Path(path)
    components = load_components(path)
    check_components(components, path)
    parts = {EXERCISES[name][0]: value for name, value in components.items() if EXERCISES[name][0]}
    print(f"Training with your {', '.join(components)} from {path} (the run keeps a copy: components.py).")
    if "kl_divergence" in components and "kl_loss" not in components:
        print("note: the agent calls kl_divergence through kl_loss; your file has no kl_loss, so the library's "
              "kl_loss (with its own kl_divergence) trains. Fill in exercise 3.2 to train with yours.")
    return dataclasses.replace(Parts(), **parts, source=path)


def saved_cells(notebooks: list) -> list[tuple[str, str]]:
    """(notebook, source) of each `# @save` cell of the notebook files, in order."""
    cells = [(path.stem, "".join(cell["source"])) for path in map(pathlib.Path, notebooks)
             for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]
    return [(where, source) for where, source in cells if source.startswith(SAVE)]


def saved_cells_in_kernel() -> list[tuple[str, str]]:
    """("In [n]", source) of the `# @save` cells run in this IPython kernel, for where the notebooks
    are not on disk (Colab). A learner runs a cell again after fixing it, so each cell's last run
    counts, in the order the cells first ran; a run of the same cell has the same first line and
    defines the same names."""
    from IPython import get_ipython  # looked up when called: only a kernel that is running has a history

    shell = get_ipython()
    if shell is None:
        raise ValueError(f"write_components found no notebooks ({NOTEBOOK_FILES}) in {pathlib.Path.cwd()}, and "
                         "this is not a Jupyter kernel whose history could give your @save cells. Run it from the "
                         "folder with your workbooks (notebooks/workbooks), or pass notebooks=[...].")
    last_runs = {}  # a dict keeps the order in which its keys first came; a re-run replaces the value
    for number, source in enumerate(shell.user_ns["In"]):
        if source.startswith(SAVE):
            last_runs[(source.split("\n", 1)[0], *DEFINES.findall(source))] = (f"In [{number}]", source)
    return list(last_runs.values())


def write_components(path: str | pathlib.Path, notebooks: list | None = None) -> pathlib.Path:
    """Write the `# @save` cells of `notebooks` (default: the lessons or workbooks in the current
    folder, so from a workbook, your workbooks) into one components file. With no notebooks on
    disk (Colab), the cells come from this kernel's history: those run in this notebook. A cell
    with a blank not yet filled in is left out (the library's version is used); the file first
    imports each cell's module, so the cells find the names they used in the notebook."""
    notebooks = sorted(pathlib.Path(".").glob(NOTEBOOK_FILES)) if notebooks is None else notebooks
    if notebooks:
        origin, saved = f"{len(notebooks)} notebook(s)", saved_cells(notebooks)
    else:  # an empty list too: lesson 6 passes the current folder's notebooks, none on Colab
        origin, saved = "this kernel's history", saved_cells_in_kernel()
    modules, cells, kept, skipped = [], [], [], []
    for where, source in saved:
        module = source.splitlines()[0][len(SAVE):].strip()
        (skipped if UNWRITTEN in source else kept).append(f"{where}: {module}")
        if UNWRITTEN not in source:
            modules += [module] if module not in modules else []
            cells.append(f"# ---- from {where}\n{source}")
    # The library's names first (what the cells use, as in the notebooks), then the cells: yours win.
    imports = "".join(f"from dreamer_lib.{m} import *  # noqa: F401,F403\n" for m in modules)
    parts = ['"""My exercise solutions, collected from my workbooks by write_components."""\n' + imports, *cells]
    path = pathlib.Path(path)
    path.write_text("\n\n\n".join(parts) + "\n")
    print(f"Wrote {path} from {origin}: {len(kept)} cell(s) with your code" + (f" ({', '.join(kept)})" if kept else "")
          + (f"; left out {len(skipped)} with blanks still to fill" if skipped else "") + ".")
    return path


def train(components: str | pathlib.Path, config: Config, logdir: str | pathlib.Path, progress: bool = True):
    """Check the components file's functions, then train `config` in `logdir` with them, exactly
    as `dreamer-train --components FILE` does. Returns the eval rows."""
    return Trainer(config, logdir, load_parts(components), progress).run()

