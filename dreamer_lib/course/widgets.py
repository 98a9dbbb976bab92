"""The imagination debugger as a widget: a thin ipywidgets layer over `pictures.debug_episode`
and `pictures.debugger_frame` (which hold all the computation and drawing, and are tested
without a screen). Core widgets only, so it runs in Jupyter, VS Code and Colab.

    from dreamer_lib.course.widgets import imagination_debugger
    imagination_debugger(agent, episodes)      # last line of a notebook cell
"""
from __future__ import annotations

from collections import OrderedDict

import matplotlib.pyplot as plt

from dreamer_lib.course import pictures


def imagination_debugger(agent, episodes, horizon: int | None = None, start: int = 10, cache_size: int = 8):
    """Pick an episode (Dropdown) and the step where observations stop (start slider), then scrub
    or play through time (t slider + Play). Shows `pictures.debugger_frame` for that choice.

    episodes: a list of replay-buffer episodes (e.g. `ReplayBuffer(run / "episodes")` after
    `.load()`, then `list(buffer.episodes)`). Returns the widget box; the computed traces of the
    last few (episode, start) pairs are cached, so scrubbing t only redraws."""
    import ipywidgets as widgets
    from IPython.display import display

    if not episodes:
        raise ValueError("No episodes to show: load a run's episodes first (ReplayBuffer(run / 'episodes').load()).")
    episodes = list(episodes)
    options = [(f"episode {i}: {len(e['image']) - 1} steps, return {float(e['reward'].sum()):.0f}", i)
               for i, e in enumerate(episodes)]
    last = len(episodes[0]["image"]) - 1
    episode = widgets.Dropdown(options=options, value=0, description="episode", layout=widgets.Layout(width="380px"))
    start_slider = widgets.IntSlider(value=min(start, last), min=0, max=last, description="start",
                                     continuous_update=False)
    time = widgets.IntSlider(value=min(start_slider.value + 1, last), min=0, max=last, description="t")
    play = widgets.Play(value=time.value, min=0, max=last, interval=150, description="play")
    widgets.jslink((play, "value"), (time, "value"))
    cache: OrderedDict = OrderedDict()

    def traces_for(index: int, step: int) -> dict:
        key = (index, step)
        if key not in cache:
            cache[key] = pictures.debug_episode(agent, episodes[index], step, horizon)
            while len(cache) > cache_size:
                cache.popitem(last=False)
        cache.move_to_end(key)
        return cache[key]

    def on_episode(change) -> None:
        length = len(episodes[change["new"]]["image"]) - 1
        for slider in (start_slider, time, play):
            slider.max = length

    episode.observe(on_episode, names="value")

    def show(index: int, step: int, t: int) -> None:
        figure = pictures.debugger_frame(traces_for(index, step), t)
        display(figure)
        plt.close(figure)

    output = widgets.interactive_output(show, {"index": episode, "step": start_slider, "t": time})
    return widgets.VBox([widgets.HBox([episode, start_slider]), widgets.HBox([play, time]), output])
