#!/usr/bin/env bash
# Train the weights shipped in data/weights/ with the package's own command line.
#
#   bash data/weights/train_weights.sh OUT_DIR [EPOCHS] [SECONDS] [SEEDS] [NAMES]
#
# Trains, side by side (one process each; on a GPU they share the card), with the `paper` preset
# (batch 8, 188 batches an epoch, Adam at lstmcor.settings.LEARNING_RATE, lambda 0.01) cut to
# EPOCHS epochs (default 40), for each seed of SEEDS (default "0"): VoxelMorph and LSTM-COR as the
# paper has them, their diffeomorphic (`_diffeo`, 7 squarings) and NCC (`_ncc`, lambda 1) variants
# and the five LSTM-COR ablations; NAMES (default: all) picks some, e.g. "voxelmorph lstmcor".
# SECONDS (default 0 = no limit) stops each run after that long; the checkpoint of its last whole
# epoch is kept, and `lstmcor train --out <run> --resume` goes on from it (a second sitting).
# Then each model is re-saved without its optimizer state as OUT_DIR/<name>.keras (seed 0) or
# OUT_DIR/<name>_seed<k>.keras, with its loss log (.log.csv) and settings (.state.json).
set -uo pipefail
OUT=${1:?usage: train_weights.sh OUT_DIR [EPOCHS] [SECONDS] [SEEDS] [NAMES]}
EPOCHS=${2:-40}
SECONDS_LIMIT=${3:-0}
SEEDS=${4:-0}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # several JAX processes share one GPU

declare -A RUNS=(
  [voxelmorph]="--model voxelmorph"
  [lstmcor]="--model lstmcor"
  [voxelmorph_diffeo]="--model voxelmorph --integration-steps 7"
  [lstmcor_diffeo]="--model lstmcor --integration-steps 7"
  [voxelmorph_ncc]="--model voxelmorph --loss ncc --lam 1"
  [lstmcor_ncc]="--model lstmcor --loss ncc --lam 1"
  [lstmcor_no_se_skips]="--model lstmcor --no-se-skips"
  [lstmcor_no_funnel]="--model lstmcor --no-funnel"
  [lstmcor_conv]="--model lstmcor --recurrence conv"
  [lstmcor_no_peepholes]="--model lstmcor --no-peepholes"
  [lstmcor_no_field_se]="--model lstmcor --no-field-se"
)
NAMES=${5:-${!RUNS[*]}}
for name in $NAMES; do [ -n "${RUNS[$name]+x}" ] || { echo "unknown run '$name'; known: ${!RUNS[*]}" >&2; exit 2; }; done
limit=()
# TERM, not INT: a background job of a non-interactive shell ignores SIGINT.
[ "$SECONDS_LIMIT" -gt 0 ] && limit=(timeout "$SECONDS_LIMIT")
tag() { [ "$2" = 0 ] && echo "$1" || echo "$1_seed$2"; }   # the shipped file's name
for name in $NAMES; do
  for seed in $SEEDS; do
    run=$(tag "$name" "$seed")
    echo "lstmcor train ${RUNS[$name]} --preset paper --epochs $EPOCHS --seed $seed --out $OUT/runs/$run"
    "${limit[@]}" $PY -m lstmcor train ${RUNS[$name]} --preset paper --epochs "$EPOCHS" --seed "$seed" \
        --out "$OUT/runs/$run" > "$OUT/$run.train.txt" 2>&1 &
  done
done
wait
for base in $NAMES; do for seed in $SEEDS; do
  name=$(tag "$base" "$seed")
  run="$OUT/runs/$name"
  src="$run/model.keras"; [ -f "$src" ] || src="$run/checkpoint.keras"
  [ -f "$src" ] || { echo "$name: no model written"; continue; }
  $PY - "$src" "$OUT/$name.keras" <<'PYEOF'
import sys, keras, lstmcor.models  # noqa: F401  (registers the custom layers)
model = keras.saving.load_model(sys.argv[1], safe_mode=True, compile=False)
model.save(sys.argv[2])
PYEOF
  cp "$run/log.csv" "$OUT/$name.log.csv"
  cp "$run/state.json" "$OUT/$name.state.json"
  echo "$name: $(tail -1 "$OUT/$name.train.txt" | tr '\r' '\n' | tail -1)"
done; done
