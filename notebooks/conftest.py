# nbval re-executes the lessons at the tiny "ci" scale (the kernels inherit this environment);
# the workbooks are checked by tests/test_notebooks.py instead (they stop at the first exercise).
import os

os.environ.setdefault("DREAMER_SCALE", "ci")
collect_ignore_glob = ["workbooks/*", "*.py"]
