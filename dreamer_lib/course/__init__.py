"""The course layer: what the lessons need and the agent does not.

    scale     pick the run size (gpu / cpu / ci) and print what produced a notebook's outputs
    checks    the exercise checks: a learner's function against the library's, on seeded inputs
    pictures  the lesson-only figures (imagined rollouts, the imagination debugger, metric grids)
    widgets   thin ipywidgets over those pictures

The algorithm (every other module of dreamer_lib) never imports this package; tests/test_layers.py
checks that. Import the modules themselves, e.g. `from dreamer_lib.course.scale import setup`,
`from dreamer_lib.course import pictures`.
"""
