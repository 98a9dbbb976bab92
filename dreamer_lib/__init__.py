"""dreamer_lib: DreamerV1 (Hafner et al., "Dream to Control", ICLR 2020) in PyTorch, small enough
to read in an evening. Data flows env -> buffer -> world model -> imagination -> actor-critic."""

__version__ = "0.1.0"
