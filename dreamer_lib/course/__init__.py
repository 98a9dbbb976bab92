"""The course layer: what the lessons need and the agent does not.

    scale     pick the run size (gpu / cpu / ci) and print what produced a notebook's outputs
    checks    the exercise checks: a learner's function against the library's, on seeded inputs
    pictures  the lesson-only figures (imagined rollouts, the imagination debugger, metric grids)
    widgets   thin ipywidgets over those pictures
    knobs     lessons 3 and 5: turn free nats, lambda and horizon, the actor's mean scale and std
    dream     drive the learned model with your own actions (lesson 7)
    components  your exercise solutions in the real trainer, each checked first (lesson 6)
    pretrained  the trained models that ship with the course, by name (lesson 7, dreamer-eval)

The algorithm (every other module of dreamer_lib) never imports this package; tests/test_layers.py
checks that. Import the modules themselves, e.g. `from dreamer_lib.course.scale import setup`,
`from dreamer_lib.course import pictures`.
"""
