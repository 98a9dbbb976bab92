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


def drive_the_dream(agent, env, seed: int = 0, context: int = 5, window: int = 6):
    """Steer the world model yourself: one slider per action number (torque for the pendulum),
    "step" takes one step, "play N steps" takes N with the same action, "reset" starts over from
    the seed. Each action goes to the dream (the prior, from a real posterior start) and to the
    real env; the Output shows `dream.dream_strip` of the last `window` steps.

    A thin layer over `dream.Dream`, which does all the work: the returned box carries it as
    `.dream`, so `box.dream.history()` gives the arrays of the whole drive."""
    import ipywidgets as widgets
    from IPython.display import display

    from dreamer_lib.course.dream import Dream, dream_strip

    dream = Dream(agent, env, seed, context)
    names = ["torque"] if dream.action_size == 1 else [f"action {i}" for i in range(dream.action_size)]
    sliders = [widgets.FloatSlider(value=0.0, min=-1.0, max=1.0, step=0.05, description=name,
                                   continuous_update=False) for name in names]
    step = widgets.Button(description="step")
    play = widgets.Button(description="play N steps")
    count = widgets.BoundedIntText(value=10, min=1, max=200, description="N", layout=widgets.Layout(width="150px"))
    reset = widgets.Button(description="reset")
    seed_box = widgets.IntText(value=seed, description="seed", layout=widgets.Layout(width="150px"))
    output = widgets.Output()

    def show() -> None:
        with output:
            output.clear_output(wait=True)
            figure = dream_strip(dream.history(last=window))
            display(figure)
            plt.close(figure)

    def take(steps: int) -> None:
        for _ in range(steps):
            dream.step([slider.value for slider in sliders])
        show()

    step.on_click(lambda _: take(1))
    play.on_click(lambda _: take(count.value))
    reset.on_click(lambda _: (dream.reset(seed=seed_box.value), show()))
    show()
    box = widgets.VBox([widgets.HBox(sliders), widgets.HBox([step, play, count, reset, seed_box]), output])
    box.dream = dream
    return box
