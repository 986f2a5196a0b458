#!/usr/bin/env bash
# Train the weights shipped in data/weights/ with the package's own command line.
#
#   bash data/weights/train_weights.sh OUT_DIR [EPOCHS] [SECONDS] [SEEDS] [NAMES]
#
# Trains, side by side (one process each; on a GPU they share the card), with the `paper` preset
# (batch 8, 188 batches an epoch, Adam at lstmcor.settings.LEARNING_RATE, each loss's lambda of
# lstmcor.settings.LAMBDAS unless the run gives one) cut to
# EPOCHS epochs (default 40), for each seed of SEEDS (default "0"), the runs named in NAMES
# (default: all of them, in the order below), e.g. "voxelmorph lstmcor":
#
#   voxelmorph, lstmcor                       the two networks as the paper has them (MSE, lambda 0.003)
#   voxelmorph_diffeo, lstmcor_diffeo         diffeomorphic: the field integrated in 7 squarings
#   voxelmorph_ncc, lstmcor_ncc               local NCC (window 9) instead of MSE, lambda 0.3 (NCC's default)
#   voxelmorph_diffeo_ncc, lstmcor_diffeo_ncc both: 7 squarings and NCC with lambda 0.3
#   voxelmorph_ncc_l1, lstmcor_ncc_l1         NCC with lambda 1 } the candidates beside 0.3, to check
#   voxelmorph_ncc_l3, lstmcor_ncc_l3         NCC with lambda 3 } NCC's lambda at this budget
#   voxelmorph_l001, lstmcor_l001             MSE with lambda 0.01, the candidate beside 0.003 for MSE's
#   lstmcor_no_se_skips, lstmcor_no_funnel, lstmcor_conv, lstmcor_no_peepholes, lstmcor_no_field_se
#                                             the five LSTM-COR ablations (lstmcor.settings.ABLATION_RUNS)
#
# SECONDS (default 0 = no limit) stops each run after that long (SIGTERM); the checkpoint of its
# last whole epoch is kept, and `lstmcor train --out <run> --resume` goes on from it.
# Then each model is re-saved without its optimizer state as OUT_DIR/<name>.keras (seed 0) or
# OUT_DIR/<name>_seed<k>.keras, with its loss log (.log.csv), settings (.state.json, less the run's
# checkpoint entry, whose file is not shipped) and the last lines of its console output
# (.train.txt), all in one Python process.
#
# Environment (all optional):
#   PRESET=paper   the preset (`ci` for a rehearsal on a CPU: 2 pairs a batch, 1 validation batch)
#   STEPS=         batches per epoch, over the preset's (--steps-per-epoch); empty: the preset's
#   RESUME=0       1: continue the runs already in OUT_DIR/runs up to EPOCHS (--resume)
#   RESAVE=1       0: train only, no re-save (a first sitting that RESUME=1 goes on from)
#   TRAIN=1        0: re-save only, what OUT_DIR/runs already holds
#   PYTHON=python3 the interpreter
set -uo pipefail
OUT=${1:?usage: train_weights.sh OUT_DIR [EPOCHS] [SECONDS] [SEEDS] [NAMES]}
EPOCHS=${2:-40}
SECONDS_LIMIT=${3:-0}
SEEDS=${4:-0}
PY=${PYTHON:-python3}
PRESET=${PRESET:-paper} STEPS=${STEPS:-} RESUME=${RESUME:-0} RESAVE=${RESAVE:-1} TRAIN=${TRAIN:-1}
mkdir -p "$OUT/runs"
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # several JAX processes share one GPU

ORDER=(voxelmorph lstmcor voxelmorph_diffeo lstmcor_diffeo voxelmorph_ncc lstmcor_ncc
       voxelmorph_diffeo_ncc lstmcor_diffeo_ncc voxelmorph_ncc_l1 lstmcor_ncc_l1 voxelmorph_ncc_l3 lstmcor_ncc_l3
       voxelmorph_l001 lstmcor_l001 lstmcor_no_se_skips lstmcor_no_funnel lstmcor_conv lstmcor_no_peepholes lstmcor_no_field_se)
declare -A RUNS=(
  [voxelmorph]="--model voxelmorph"
  [lstmcor]="--model lstmcor"
  [voxelmorph_diffeo]="--model voxelmorph --integration-steps 7"
  [lstmcor_diffeo]="--model lstmcor --integration-steps 7"
  [voxelmorph_ncc]="--model voxelmorph --loss ncc --lam 0.3"
  [lstmcor_ncc]="--model lstmcor --loss ncc --lam 0.3"
  [voxelmorph_diffeo_ncc]="--model voxelmorph --integration-steps 7 --loss ncc --lam 0.3"
  [lstmcor_diffeo_ncc]="--model lstmcor --integration-steps 7 --loss ncc --lam 0.3"
  [voxelmorph_ncc_l1]="--model voxelmorph --loss ncc --lam 1"
  [lstmcor_ncc_l1]="--model lstmcor --loss ncc --lam 1"
  [voxelmorph_ncc_l3]="--model voxelmorph --loss ncc --lam 3"
  [lstmcor_ncc_l3]="--model lstmcor --loss ncc --lam 3"
  [voxelmorph_l001]="--model voxelmorph --lam 0.01"
  [lstmcor_l001]="--model lstmcor --lam 0.01"
  [lstmcor_no_se_skips]="--model lstmcor --no-se-skips"
  [lstmcor_no_funnel]="--model lstmcor --no-funnel"
  [lstmcor_conv]="--model lstmcor --recurrence conv"
  [lstmcor_no_peepholes]="--model lstmcor --no-peepholes"
  [lstmcor_no_field_se]="--model lstmcor --no-field-se"
)
NAMES=${5:-${ORDER[*]}}
for name in $NAMES; do [ -n "${RUNS[$name]+x}" ] || { echo "unknown run '$name'; known: ${ORDER[*]}" >&2; exit 2; }; done
limit=()
# TERM, not INT: a background job of a non-interactive shell ignores SIGINT.
[ "$SECONDS_LIMIT" -gt 0 ] && limit=(timeout "$SECONDS_LIMIT")
extra=(--preset "$PRESET" --epochs "$EPOCHS")
[ -n "$STEPS" ] && extra+=(--steps-per-epoch "$STEPS")
[ "$RESUME" = 1 ] && extra+=(--resume)
tag() { [ "$2" = 0 ] && echo "$1" || echo "$1_seed$2"; }   # the shipped file's name
if [ "$TRAIN" = 1 ]; then
  for name in $NAMES; do
    for seed in $SEEDS; do
      run=$(tag "$name" "$seed")
      echo "lstmcor train ${RUNS[$name]} ${extra[*]} --seed $seed --out $OUT/runs/$run"
      # shellcheck disable=SC2086  # RUNS[...] holds several words
      "${limit[@]}" $PY -m lstmcor train ${RUNS[$name]} "${extra[@]}" --seed "$seed" \
          --out "$OUT/runs/$run" >> "$OUT/runs/$run.train.txt" 2>&1 &
    done
  done
  wait
fi
[ "$RESAVE" = 1 ] || exit 0
pairs=()
for base in $NAMES; do for seed in $SEEDS; do
  name=$(tag "$base" "$seed")
  run="$OUT/runs/$name"
  # model.keras unless a later sitting, stopped by the time limit, committed epochs after it
  src="$run/model.keras"; [ "$src" -nt "$run/checkpoint.keras" ] || src="$run/checkpoint.keras"
  [ -f "$src" ] || { echo "$name: no model written"; continue; }
  pairs+=("$src" "$OUT/$name.keras")
  cp "$run/log.csv" "$OUT/$name.log.csv"
  # Keras's progress bar rewrites its line with \r: keep the last lines as lines.
  tr '\r' '\n' < "$run.train.txt" | grep -v '^\s*$' | tail -n 40 > "$OUT/$name.train.txt"
done; done
[ ${#pairs[@]} -gt 0 ] || exit 1
# One process for every model; on the CPU (it only copies weights), so a GPU run needs no device.
JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES="" $PY - "${pairs[@]}" <<'PYEOF'
import csv, json, sys
import keras
import lstmcor.models  # noqa: F401  (registers the custom layers)
args = sys.argv[1:]
for src, dst in zip(args[::2], args[1::2]):
    try:
        keras.saving.load_model(src, safe_mode=True, compile=False).save(dst)
    except Exception as error:  # one bad run does not stop the others
        print(f"{dst}: not re-saved ({type(error).__name__}: {error})", flush=True)
        continue
    run = src.rsplit("/", 1)[0]
    state = json.load(open(run + "/state.json"))
    state.pop("checkpoint", None)  # names run/checkpoint.keras, which is not shipped
    with open(dst[: -len(".keras")] + ".state.json", "w") as handle:
        json.dump(state, handle, indent=2)
    last = (list(csv.DictReader(open(run + "/log.csv"))) or [{}])[-1]
    print(f"{dst.rsplit('/', 1)[-1]}: {state['epochs_done']} epochs, loss {float(last.get('loss', 'nan')):.5f}, "
          f"val_loss {float(last.get('val_loss', 'nan')):.5f} ({src.rsplit('/', 1)[-1]})", flush=True)
PYEOF
