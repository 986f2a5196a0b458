#!/usr/bin/env bash
# One-shot GPU check for lstmcor, run from the repository root on an offline GPU machine with
# Python 3.12 and JAX, after tools/gpu_wheels.sh filled .whl/ here and .whl/ was copied along:
#   chapter 06 (papermill, PRESET=quick, KERAS_BACKEND=jax), benchmarks/inference.py, a GPU unit-test subset.
# No `set -e`: every step runs even if an earlier one failed. Files under $OUT (7 at most, flat):
# Step limits (timeout): install+machine ~20 s, ch06 270 s, benchmark 100 s, pytest 180 s: worst case ~580 s.
# Results go to $OUT (default /tmp/out).
#   machine.txt 06_loss_and_training.ipynb ch06.log ch06_outputs.tgz bench.json bench.log pytest.log
set -u
set -o pipefail
OUT=${OUT:-/tmp/out}
# Overridable for a local dry run only; the defaults are what the GPU check runs.
SITE=${SITE:-/tmp/site} CH06_PRESET=${CH06_PRESET:-quick} BENCH_ARGS=${BENCH_ARGS:---pairs 30 --train-steps 10 --models voxelmorph lstmcor lstmcor-conv lstmcor-floor}
mkdir -p "$OUT"
T0=$(date +%s)
banner() { echo; echo "==================== $* (t=$(( $(date +%s) - T0 )) s) ===================="; }
step_end() { echo "---- $1: rc=$2, $(( $(date +%s) - $3 )) s (t=$(( $(date +%s) - T0 )) s)"; }

banner "install wheels"
S=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
step_end install $? "$S"
export PYTHONPATH=$SITE:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export PYDEVD_DISABLE_FILE_VALIDATION=1 TF_CPP_MIN_LOG_LEVEL=2
# A private `python3` kernelspec (as tools/run_course.py does): the kernel is this python3, whatever
# other kernelspecs the machine has; it inherits PYTHONPATH and KERAS_BACKEND from papermill.
mkdir -p /tmp/jk/kernels/python3
printf '{"argv": ["%s", "-m", "ipykernel_launcher", "-f", "{connection_file}", "--IPKernelApp.log_level=CRITICAL"], "display_name": "Python 3", "language": "python", "metadata": {"debugger": false}}\n' \
  "$(command -v python3)" > /tmp/jk/kernels/python3/kernel.json
export JUPYTER_PATH=/tmp/jk

banner "machine"
S=$(date +%s)
{ date -u; nvidia-smi -L; nproc
  python3 -c 'import jax; print(jax.devices())'
  python3 -c 'import sys, jax, keras, papermill, ipykernel; print("python", sys.version.split()[0], "| jax", jax.__version__, "| keras", keras.__version__, keras.__file__, "| backend", keras.backend.backend(), "| papermill", papermill.__version__, "| ipykernel", ipykernel.__version__)'
} 2>&1 | tee "$OUT/machine.txt"
step_end machine $? "$S"

banner "chapter 06 (papermill, PRESET=$CH06_PRESET)"
rm -rf /tmp/ch06
S=$(date +%s)
# Convert the chapter from this working tree (jupytext travels as one of the wheels).
NB=/tmp/06_loss_and_training.ipynb
python3 -m jupytext --to ipynb -o "$NB" course/06_loss_and_training.py 2>&1 | tee "$OUT/ch06.log"
# The inline backend (not Agg) inside the kernel, so the figures are embedded in the executed notebook.
MPLBACKEND=module://matplotlib_inline.backend_inline timeout -k 10 270 \
  python3 -m papermill "$NB" "$OUT/06_loss_and_training.ipynb" -k python3 \
  -p PRESET "$CH06_PRESET" -p OUTPUT_DIR /tmp/ch06 --execution-timeout 300 --log-output --no-progress-bar 2>&1 | tee -a "$OUT/ch06.log"
RC=$?
step_end ch06 "$RC" "$S" | tee -a "$OUT/ch06.log"
# Model files (*.keras) are left out: only logs, state and the lambda sweep come back.
tar czf "$OUT/ch06_outputs.tgz" --exclude='*.keras' -C /tmp ch06 && tar tzvf "$OUT/ch06_outputs.tgz"

banner "benchmark (benchmarks/inference.py)"
S=$(date +%s)
timeout -k 10 100 python3 benchmarks/inference.py $BENCH_ARGS --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"
step_end bench $? "$S" | tee -a "$OUT/bench.log"

banner "pytest (GPU subset)"
S=$(date +%s)
timeout -k 10 180 python3 -m pytest -q tests/test_convlstm.py tests/test_transform.py tests/test_se.py \
  tests/test_losses_metrics.py tests/test_models.py tests/test_serialization.py tests/test_validate.py \
  tests/test_benchmark.py -m "not slow and not browser" -p no:cacheprovider 2>&1 | tail -15 | tee "$OUT/pytest.log"
step_end pytest $? "$S" | tee -a "$OUT/pytest.log"

banner "done"
ls -la "$OUT"
