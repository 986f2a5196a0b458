#!/usr/bin/env bash
# Train the weights shipped in data/weights/ with the package's own command line.
#
#   bash data/weights/train_weights.sh OUT_DIR [EPOCHS] [SECONDS]
#
# Trains VoxelMorph, LSTM-COR and the five LSTM-COR ablations side by side (one process each; on a
# GPU they share the card), with the `paper` preset (batch 8, 188 batches an epoch, Adam 1e-4,
# lambda 0.01, seed 0) cut to EPOCHS epochs (default 40). SECONDS (default 0 = no limit) stops each
# run after that long; the checkpoint of its last whole epoch is kept, and `lstmcor train ... --resume`
# goes on from it. Then each model is re-saved without its optimizer state as OUT_DIR/<name>.keras,
# with its loss log as OUT_DIR/<name>.log.csv.
set -uo pipefail
OUT=${1:?usage: train_weights.sh OUT_DIR [EPOCHS] [SECONDS]}
EPOCHS=${2:-40}
SECONDS_LIMIT=${3:-0}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # several JAX processes share one GPU

declare -A RUNS=(
  [voxelmorph]="--model voxelmorph"
  [lstmcor]="--model lstmcor"
  [lstmcor_no_se_skips]="--model lstmcor --no-se-skips"
  [lstmcor_no_funnel]="--model lstmcor --no-funnel"
  [lstmcor_conv]="--model lstmcor --recurrence conv"
  [lstmcor_no_peepholes]="--model lstmcor --no-peepholes"
  [lstmcor_no_field_se]="--model lstmcor --no-field-se"
)
limit=()
# TERM, not INT: a background job of a non-interactive shell ignores SIGINT.
[ "$SECONDS_LIMIT" -gt 0 ] && limit=(timeout "$SECONDS_LIMIT")
for name in "${!RUNS[@]}"; do
  echo "lstmcor train ${RUNS[$name]} --preset paper --epochs $EPOCHS --seed 0 --out $OUT/runs/$name"
  "${limit[@]}" $PY -m lstmcor train ${RUNS[$name]} --preset paper --epochs "$EPOCHS" --seed 0 \
      --out "$OUT/runs/$name" > "$OUT/$name.train.txt" 2>&1 &
done
wait
for name in "${!RUNS[@]}"; do
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
done
