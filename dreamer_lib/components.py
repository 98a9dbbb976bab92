"""Your own code in the real trainer:  dreamer-train --components my_dreamer.py

The lessons mark each exercise that is a piece of this library with `# @save dreamer_lib.<module>`
(lesson 1 explains the marker). A components file is a Python file that defines some of those
names, say your lesson 5 `compute_lambda_returns`; `use_components` makes the library call yours
in place of its own for the length of a `with` block, so `dreamer-train` learns with your code.
The console command first runs each one's exercise check (the course's, dreamer_lib/course/
components.py) and refuses a wrong one: an hour of training with a subtly wrong return says
nothing about why it failed. `dreamer-eval` and the lessons' pictures use the library's code.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import pathlib

# Each name a components file may define, and the modules whose code calls it while training.
# Python looks a global name up in the calling module when the call runs, so a function is
# replaced where it is called: agent.py does `from dreamer_lib.rssm import kl_loss`, so the agent
# calls dreamer_lib.agent.kl_loss, and that is the name to replace.
CALLED_FROM = {
    "ConvEncoder": ("agent",),  # lesson 1 (the classes are built when the agent is)
    "ConvDecoder": ("agent",),
    "kl_divergence": ("rssm",),  # lesson 3
    "kl_loss": ("agent",),
    "RSSM": ("agent",),
    "compute_lambda_returns": ("agent",),  # lesson 5
    "discount_weights": ("agent", "actor_critic"),
    "compute_actor_loss": ("agent",),
    "compute_critic_loss": ("agent",),
    "updates_due": ("train",),  # lesson 6
}


def load_components(path: str | pathlib.Path) -> dict[str, object]:
    """Run the file once, as a module of its own, and return the exercise names it defines itself
    (a name it imports from dreamer_lib is the library's, not a component)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"--components {path}: no such file. Give a Python file that defines some of: "
                         f"{', '.join(CALLED_FROM)}.")
    spec = importlib.util.spec_from_file_location(f"components_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise ValueError(f"--components {path} fails when it runs: {type(error).__name__}: {error}. Run "
                         f"`python {path}` to see where, fix it, and start again.") from error
    found = {name: value for name, value in vars(module).items()
             if name in CALLED_FROM and getattr(value, "__module__", None) == module.__name__}
    if not found:
        raise ValueError(f"--components {path} defines none of the exercise names the trainer can use: "
                         f"{', '.join(CALLED_FROM)}. Define one of them (spelt the same) in the file.")
    return found


@contextlib.contextmanager
def use_components(components: dict[str, object]):
    """Inside the block, the library calls `components` (name -> function or class) in place of
    its own; on leaving, its own are back, whatever happened inside."""
    unknown = sorted(set(components) - set(CALLED_FROM))
    if unknown:
        raise ValueError(f"Not exercise names of the library: {', '.join(unknown)}. Known: {', '.join(CALLED_FROM)}.")
    swaps = [(importlib.import_module(f"dreamer_lib.{module}"), name)
             for name in components for module in CALLED_FROM[name]]
    originals = [getattr(module, name) for module, name in swaps]
    try:
        for module, name in swaps:
            setattr(module, name, components[name])
        yield
    finally:
        for (module, name), original in zip(swaps, originals):
            setattr(module, name, original)
