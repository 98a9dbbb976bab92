# Sourced by the GPU scripts beside it: $out (the device tool's $OUT, else ./gpu-out), $py, and,
# on the GPU machine (not with TINY=1), the carried wheels of folder $1 installed into /tmp/site:
# it has torch, numpy, matplotlib and pytest, not gymnasium, tyro or the course's other packages.
out=${OUT:-gpu-out}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 SDL_VIDEODRIVER=dummy
if [ -z "${TINY:-}" ] && [ -d "$1" ]; then
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$1"/*.whl || exit 1
  export PYTHONPATH=$PWD:/tmp/site
fi
