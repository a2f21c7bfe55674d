#!/usr/bin/env bash
# GPU benchmark in one short script (~9 min on one H100): float32 vs mixed precision on a
# full-size model, then Table 1 at full scale, sized to the time left.
#
# For a machine whose Python (3.12) has JAX with CUDA but no TensorFlow and no network:
# what is missing is installed from the wheels in .whl/ (git-ignored; carry it), offline
# and without dependencies: keras, namex, optree, PyMaxflow, centrosome, deprecation
# (tifffile too if absent). The package itself runs from this checkout (PYTHONPATH; the
# same code as `pip install --no-deps .` would copy, with no build step), then
# KERAS_BACKEND=jax python benchmarks/gpu_grid.py (see its docstring).
#
#   bash benchmarks/gpu.sh                  # outputs in $OUT, else benchmarks/results/gpu
#   GPU_SH_SMOKE=1 bash benchmarks/gpu.sh   # tiny sizes: check the script on a CPU
#
# Environment: PYTHON (default python3), OUT, GPU_SH_BUDGET_S (seconds for the whole
# script, default 540; 180 in smoke mode), GPU_SH_SMOKE. Extra arguments go to
# gpu_grid.py (e.g. --precision-s 60 --policy mixed_float16 --skip-grid).
set -euo pipefail
cd "$(dirname "$0")/.."
export GPU_SH_T0="${GPU_SH_T0:-$(date +%s)}"
PY="${PYTHON:-python3}"
export KERAS_BACKEND=jax
export CELLCUTTER_NB_QUIET=1
export OUT="${OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT"
if [ -n "${GPU_SH_SMOKE:-}" ] && [ "${GPU_SH_SMOKE}" != 0 ]; then
    export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
fi

# 1. install what this Python lacks, from .whl/ only (import name -> wheel name)
missing=$("$PY" - <<'EOF'
import importlib.util
wheels = {"keras": "keras", "namex": "namex", "optree": "optree", "maxflow": "PyMaxflow",
          "tifffile": "tifffile", "deprecation": "deprecation", "centrosome": "centrosome"}
print(" ".join(w for m, w in wheels.items() if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$missing" ] && [ "${GPU_SH_SMOKE:-0}" != 0 ]; then
    echo "gpu.sh: this Python lacks $missing (smoke mode installs nothing)" >&2; exit 1
fi
if [ -n "$missing" ]; then
    files=()
    for w in $missing; do
        f=$(ls .whl/"$w"-*.whl 2>/dev/null | head -n 1 || true)
        if [ -z "$f" ]; then echo "gpu.sh: no wheel for $w in .whl/" >&2; exit 1; fi
        files+=("$f")
    done
    echo "installing from .whl/: $missing"
    "$PY" -m pip install --quiet --no-index --find-links .whl --no-deps "${files[@]}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'EOF'
import jax, keras, cellcutter_nb
print(f"jax {jax.__version__} on {[d.device_kind for d in jax.devices()]}, "
      f"keras {keras.__version__} ({keras.backend.backend()})", flush=True)
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
echo "set-up took $(( $(date +%s) - GPU_SH_T0 )) s"

# 2. the benchmark (prints its budget arithmetic; CSVs under $OUT)
"$PY" benchmarks/gpu_grid.py --out "$OUT" "$@"
echo "gpu.sh: $(( $(date +%s) - GPU_SH_T0 )) s in all; outputs in $OUT:"
ls -l "$OUT"
