#!/usr/bin/env bash
# One-shot GPU retraining of the weights in data/weights, and their scores, in one call of at most
# ~9 minutes (the session's 15 minutes of device time include 1-3 minutes of machine start-up).
# Run from the repository root on the offline GPU machine (Python 3.12 + JAX, no Keras), after
# tools/gpu_wheels.sh filled .whl/ here and .whl/ was carried along:
#
#   bash tools/gpu_weights.sh              # results in $OUT (default /tmp/out)
#
# Steps: install keras (+ namex, optree, nibabel) from .whl into $SITE (seconds), machine info, train
# (until TRAIN_UNTIL=420 s), re-save (~20 s), pack, score (until SCORE_UNTIL=530 s). No `set -e`:
# every step runs even if one failed. $OUT gets 10 files at most, each well under 16 MiB:
#   gpu_weights.log machine.txt weights.tgz weights_more.tgz runs.csv pairs.csv table.md tests.md
#   lambda_val.csv lambda_val.md
# weights.tgz: the models to ship (see data/weights/README.md), weights_more.tgz: the lambda
# candidates; each model as <name>.keras (no optimizer state), .log.csv, .state.json, .train.txt.
# lambda_val.*: NCC's lambda 0.3 (the shipped *_ncc), 1 and 3, and MSE's 0.003 (the shipped plain
# networks) and 0.01, scored on validation pairs, so that the choice of lambda at this budget does
# not see the test pairs (until LAMBDA_UNTIL=570 s).
#
# The runs (data/weights/train_weights.sh names them), 23 processes side by side on the one GPU:
#   voxelmorph, lstmcor                                  seeds 0 1 2   (6)
#   {voxelmorph,lstmcor}_{diffeo,ncc,diffeo_ncc}         seed 0        (6)  chapter 09's table
#   {voxelmorph,lstmcor}_ncc_{l1,l3}                     seed 0        (4)  NCC lambda 1 and 3, beside 0.3
#   {voxelmorph,lstmcor}_l001                            seed 0        (2)  MSE lambda 0.01, beside 0.003
#   the five LSTM-COR ablations                          seed 0        (5)
# Cut: seeds 1 and 2 of the ablations and of the diffeo/NCC variants: 22 more runs, ~18 more
# LSTM-COR steps for each step of all, would take every run from ~10 epochs to ~5 (see below).
#
# Time arithmetic. The previous H200 session trained 7 runs side by side: LSTM-COR ~17 steps/s each
# (7,520 steps in 442 s), VoxelMorph 78 steps/s (96 s) (data/weights/README.md); alone, LSTM-COR
# does ~64 steps/s (15.6 ms a step, benchmarks/README.md). So the card time-slices between the
# processes and gives ~110-120 LSTM-COR steps/s in all, a VoxelMorph step costing ~0.22 of one.
# One epoch (188 steps) of all 23 runs is 188 x (14 LSTM-COR runs x ~1.05 for NCC/diffeo + 9
# VoxelMorph runs x ~0.24) ~ 3,200 LSTM-COR steps ~ 27 s. Training from t ~ 30 s to 420 s, less
# two start-ups (import, data, XLA compile, ~40-60 s each with 23 processes on 16 cores), leaves
# ~280 s: ~10 epochs (~1,900 Adam steps at 1e-3) for every run, if 23 processes get no more out of
# the card than 7 did; more if they do (the second sitting measures it).
#
# Two sittings, so that every run trains the SAME number of epochs (a time limit alone would give
# VoxelMorph ~4.6 times LSTM-COR's epochs, and lstmcor_conv more than the other ablations, and
# confound the tables): sitting 1 trains all runs E1=3 epochs and times them (when the slowest run
# finished epoch 1, and the last one epoch E1); sitting 2 resumes all (`--resume`, exact) up to
# E2 = E1 + 0.9 x (time left to TRAIN_UNTIL - START2 x measured start-up) / (measured time an
# epoch of all). START2=0.6: sitting 2 finds the XLA programs in JAX's compilation cache
# (JAX_COMPILATION_CACHE_DIR, filled by sitting 1); in the CPU rehearsal (ci preset) a run's fit,
# compilation included, took 64 s for epochs 1-2 and 12 s for the resumed epoch 3. The time
# limit of each sitting (SIGTERM at TRAIN_UNTIL) is only a safety net; a run it stops keeps its
# last whole epoch (runs.csv and the re-save lines show every run's epochs).
#
# Overridable for a CPU rehearsal (see data/weights/README.md): SKIP_INSTALL=1 PRESET=ci STEPS=
# NAMES3 SEEDS3 NAMES1 SEEDS1 E1 START2 MAX_EPOCHS TRAIN_UNTIL SCORE_UNTIL LAMBDA_UNTIL PAIRS JOBS W OUT
# PYTHON.
set -u
set -o pipefail
OUT=${OUT:-/tmp/out} SITE=${SITE:-/tmp/site} W=${W:-/tmp/w}
export PRESET=${PRESET:-paper} STEPS=${STEPS:-} PYTHON=${PYTHON:-python3}
NAMES3=${NAMES3:-voxelmorph lstmcor} SEEDS3=${SEEDS3:-0 1 2}
NAMES1=${NAMES1:-voxelmorph_diffeo lstmcor_diffeo voxelmorph_ncc lstmcor_ncc voxelmorph_diffeo_ncc lstmcor_diffeo_ncc \
voxelmorph_ncc_l1 lstmcor_ncc_l1 voxelmorph_ncc_l3 lstmcor_ncc_l3 voxelmorph_l001 lstmcor_l001 \
lstmcor_no_se_skips lstmcor_no_funnel lstmcor_conv lstmcor_no_peepholes lstmcor_no_field_se}
SEEDS1=${SEEDS1:-0}
E1=${E1:-3} START2=${START2:-0.6} MAX_EPOCHS=${MAX_EPOCHS:-900} TRAIN_UNTIL=${TRAIN_UNTIL:-420} SCORE_UNTIL=${SCORE_UNTIL:-525}
LAMBDA_UNTIL=${LAMBDA_UNTIL:-570}
PAIRS=${PAIRS:-32} JOBS=${JOBS:-12}
MORE='_ncc_l1|_ncc_l3|_l001'   # runs packed into weights_more.tgz (scores only, not shipped)
mkdir -p "$OUT"
T0=$(date +%s)
now() { echo $(( $(date +%s) - T0 )); }
banner() { echo; echo "==================== $* (t=$(now) s) ===================="; }
step_end() { echo "---- $1: rc=$2, $(( $(date +%s) - $3 )) s (t=$(now) s)"; }
tag() { [ "$2" = 0 ] && echo "$1" || echo "$1_seed$2"; }
RUNS=()
for n in $NAMES3; do for s in $SEEDS3; do RUNS+=("$(tag "$n" "$s")"); done; done
for n in $NAMES1; do for s in $SEEDS1; do RUNS+=("$(tag "$n" "$s")"); done; done
epochs_of() { grep -o '"epochs_done": *[0-9]*' "$W/runs/$1/state.json" 2>/dev/null | grep -o '[0-9]*$' || echo 0; }
reached() {  # how many runs have finished at least $1 epochs
  local k=0 r; for r in "${RUNS[@]}"; do [ "$(epochs_of "$r")" -ge "$1" ] && k=$((k + 1)); done; echo "$k"; }

# Both groups of runs side by side, up to $1 epochs, stopped at TRAIN_UNTIL; sets FIRST (t when
# every run had finished epoch 1, or empty) and prints progress every 30 s.
sitting() {
  local limit=$(( TRAIN_UNTIL - $(now) )) last=0 p1 p2
  [ "$limit" -gt 5 ] || { echo "no time left to train"; return 1; }
  RESAVE=0 bash data/weights/train_weights.sh "$W" "$1" "$limit" "$SEEDS3" "$NAMES3" & p1=$!
  RESAVE=0 bash data/weights/train_weights.sh "$W" "$1" "$limit" "$SEEDS1" "$NAMES1" & p2=$!
  FIRST=""
  echo "epochs done are listed in this order: ${RUNS[*]}"
  while kill -0 "$p1" 2>/dev/null || kill -0 "$p2" 2>/dev/null; do
    sleep 2
    [ -z "$FIRST" ] && [ "$(reached 1)" = "${#RUNS[@]}" ] && FIRST=$(now)
    if [ $(( $(now) - last )) -ge 30 ]; then
      last=$(now); echo "t=$last s: epochs done $(for r in "${RUNS[@]}"; do printf '%s ' "$(epochs_of "$r")"; done)"
    fi
  done
  wait "$p1"; wait "$p2"
}

main() {
banner "install wheels"
S=$(date +%s)
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    .whl/keras-*.whl .whl/namex-*.whl .whl/optree-*.whl .whl/nibabel-*.whl
  export PYTHONPATH=$SITE:$PWD
  python3 -c 'import keras, lstmcor.models, lstmcor.evaluation' 2>/dev/null || {
    echo "a module is missing: installing every carried wheel"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl; }
fi
step_end install $? "$S"
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1 MPLBACKEND=Agg TF_CPP_MIN_LOG_LEVEL=2
export XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/jaxcache}

banner "machine"
S=$(date +%s)
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; echo "cpus $(nproc)"
  $PYTHON -c 'import sys, jax, keras; print("python", sys.version.split()[0], "| jax", jax.__version__, jax.devices(), "| keras", keras.__version__, "| backend", keras.backend.backend())'
  echo "git $(git rev-parse --short HEAD 2>/dev/null) | preset $PRESET | ${#RUNS[@]} runs: ${RUNS[*]}"
} 2>&1 | tee "$OUT/machine.txt"
step_end machine $? "$S"

[ -e "$W/runs" ] && { echo "$W/runs exists: give another W"; return 2; }
banner "training, sitting 1: ${#RUNS[@]} runs x $E1 epochs"
S=$(date +%s)
sitting "$E1"
RC=$?
END1=$(now)
step_end "sitting 1" "$RC" "$S"
E2=$E1
if [ -n "$FIRST" ] && [ "$(reached "$E1")" = "${#RUNS[@]}" ] && [ "$E1" -ge 2 ]; then
  E2=$(awk -v s=$((S - T0)) -v f="$FIRST" -v e="$END1" -v e1="$E1" -v until="$TRAIN_UNTIL" -v max="$MAX_EPOCHS" \
          -v again="$START2" 'BEGIN {
    per = (e - f) / (e1 - 1); start = f - s - per; if (per < 1) per = 1; if (start < 0) start = 0
    add = int(0.9 * (until - e - again * start) / per); if (add < 0) add = 0; n = e1 + add; if (n > max) n = max
    printf "%d", n
    printf "an epoch of all runs %.1f s, start-up %.0f s (again: %.0f s): %d more epochs\n", per, start,
           again * start, n - e1 > "/dev/stderr" }')
elif [ "$E1" -lt 2 ]; then
  echo "E1=$E1: one epoch cannot time an epoch apart from the start-up: no second sitting"
else
  echo "sitting 1 did not finish every run's $E1 epochs: no second sitting"
fi
if [ "$E2" -gt "$E1" ]; then
  banner "training, sitting 2: resume to $E2 epochs"
  S=$(date +%s)
  RESUME=1 sitting "$E2"
  step_end "sitting 2" $? "$S"
fi

banner "re-save (epochs reached, last loss and val_loss)"
S=$(date +%s)
TRAIN=0 bash data/weights/train_weights.sh "$W" 0 0 "$SEEDS3" "$NAMES3" > "$W/resave3.txt" 2>&1 &
TRAIN=0 bash data/weights/train_weights.sh "$W" 0 0 "$SEEDS1" "$NAMES1" > "$W/resave1.txt" 2>&1
wait
grep -h -v -i warn "$W/resave3.txt" "$W/resave1.txt"
step_end resave $? "$S"

banner "pack"
S=$(date +%s)
( cd "$W" && ls -- *.keras 2>/dev/null | sed 's/\.keras$//' ) > "$W/names.txt"
ship=() more=()
while read -r n; do
  files=("$n.keras" "$n.log.csv" "$n.state.json" "$n.train.txt")
  if [[ "$n" =~ $MORE ]]; then more+=("${files[@]}"); else ship+=("${files[@]}"); fi
done < "$W/names.txt"
[ ${#ship[@]} -gt 0 ] && tar czf "$OUT/weights.tgz" -C "$W" "${ship[@]}"
[ ${#more[@]} -gt 0 ] && tar czf "$OUT/weights_more.tgz" -C "$W" "${more[@]}"
ls -l "$OUT"/*.tgz
step_end pack $? "$S"

banner "score ($PAIRS test pairs, seed 0, $JOBS processes)"
S=$(date +%s)
timeout -k 5 $(( SCORE_UNTIL - $(now) > 10 ? SCORE_UNTIL - $(now) : 10 )) \
  $PYTHON tools/score_weights.py "$W" --out "$W/scores" --pairs "$PAIRS" --jobs "$JOBS" 2>&1 | grep -v -i warn
step_end score "${PIPESTATUS[0]}" "$S"
for f in runs.csv pairs.csv table.md tests.md; do [ -f "$W/scores/$f" ] && cp "$W/scores/$f" "$OUT/"; done
cat "$OUT/table.md" "$OUT/tests.md" 2>/dev/null

banner "lambda on $PAIRS validation pairs (NCC 0.3 = the shipped *_ncc, MSE 0.003 = the shipped plain ones)"
S=$(date +%s)
mkdir -p "$W/lambda"
for net in voxelmorph lstmcor; do
  for pair in "ncc_l03:${net}_ncc" "ncc_l1:${net}_ncc_l1" "ncc_l3:${net}_ncc_l3" "mse_l0003:${net}" "mse_l001:${net}_l001"; do
    [ -f "$W/${pair#*:}.keras" ] && ln -sf "$W/${pair#*:}.keras" "$W/lambda/${net}_${pair%%:*}.keras"
  done
done
if ls "$W"/lambda/*.keras > /dev/null 2>&1; then
  timeout -k 5 $(( LAMBDA_UNTIL - $(now) > 10 ? LAMBDA_UNTIL - $(now) : 10 )) \
    $PYTHON tools/score_weights.py "$W/lambda" --out "$W/lambda_scores" --split val --pairs "$PAIRS" \
    --jobs "$JOBS" --timing-runs 1 2>&1 | grep -v -i warn
  step_end lambda "${PIPESTATUS[0]}" "$S"
  [ -f "$W/lambda_scores/runs.csv" ] && cp "$W/lambda_scores/runs.csv" "$OUT/lambda_val.csv"
  [ -f "$W/lambda_scores/table.md" ] && cp "$W/lambda_scores/table.md" "$OUT/lambda_val.md"
  cat "$OUT/lambda_val.md" 2>/dev/null
else
  echo "no lambda candidates trained"
fi

banner "done"
ls -l "$OUT"
}

main 2>&1 | tee "$OUT/gpu_weights.log"
