# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8. Ablations: what does each addition buy?
#
# LSTM-COR adds five switchable pieces to a VoxelMorph-like U-Net: squeeze-and-excitation on the U-Net skips
# (chapters {doc}`01_squeeze_excitation` and {doc}`02_unet_se_skips`), the funnel connection
# (chapter 2), a ConvLSTM over the channels instead of a plain convolution and its peephole terms
# (chapter {doc}`03_convlstm_channels`, Eq. (12)-(16)), and the SE weighting of the field before
# warping (chapter {doc}`05_spatial_transformer`, Eq. (20)). Its flow head (an SE block and a
# depthwise layer before the field convolution, chapter {doc}`04_flow_head`) has no switch and
# stays in every variant. The paper tests only the whole
# package against VoxelMorph, so it cannot say which of them does the work. An **ablation** does:
# switch off one addition at a time, keep everything else (data, loss, optimiser, budget, seed)
# the same, and score every variant on the same test pairs.
#
# **Learning goals.** After this chapter you can
#
# 1. build every ablated variant with the switches of `build_lstmcor` and count what each
#    addition adds in weights;
# 2. score the variants with the same evaluation as Table 1 and read the time each addition costs;
# 3. decide, with per-pair differences and their spread, whether a variant scores differently
#    from the full model beyond pair-to-pair noise on our data;
# 4. explain why one training per variant cannot attribute such a difference to the addition,
#    and how `lstmcor sweep` measures the seed-to-seed variation that can.

# %% tags=["parameters"]
PRESET = "quick"          # "ci" (seconds) | "quick" (minutes, laptop CPU) | "paper" (GPU)
DATA = "default"
SEED = 0
OUTPUT_DIR = "outputs/08_ablations"

# %%
import json
import logging
import os

os.makedirs(OUTPUT_DIR, exist_ok=True)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # quieter TensorFlow start (ignored by JAX and PyTorch)
logging.getLogger("tensorflow").setLevel(logging.ERROR)

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from scipy import stats

from lstmcor.data import load_dataset
from lstmcor.exercises import check
from lstmcor.evaluation import evaluate, load_weights, shipped_weights, weights_dir
from lstmcor.models import build_lstmcor
from lstmcor.plots import loss_curves
from lstmcor.settings import ABLATIONS
from lstmcor.training import read_log

N_PAIRS = {"ci": 4, "quick": 32, "paper": None}[PRESET]
TIMING_RUNS = {"ci": 3, "quick": 20, "paper": 20}[PRESET]   # single-pair calls timed per model (median)
ds = load_dataset(DATA)
print(f"[{PRESET}] pairs scored: {N_PAIRS if N_PAIRS else 'all ordered pairs of different test subjects'}")

# %% [markdown]
# ## The variants
#
# Each variant is the full model with one switch of `build_lstmcor` turned off. The shipped
# weights of each were trained by `lstmcor train` with the matching flag (`--no-se-skips`,
# `--no-funnel`, `--recurrence conv`, `--no-peepholes`, `--no-field-se`). VoxelMorph is kept as
# a reference; it is not the model with every switch off (the cell after the table builds that
# model and lists what it keeps).

# %%
FULL = "LSTM-COR"
VARIANTS = {   # row name: (shipped weights, switches of build_lstmcor, the addition that is switched off)
    FULL: ("lstmcor", {}, None),
    "no SE skips": ("lstmcor_no_se_skips", {"se_skips": False}, "SE on the skips"),
    "no funnel": ("lstmcor_no_funnel", {"funnel": False}, "funnel connection"),
    "conv, not ConvLSTM": ("lstmcor_conv", {"recurrence": "conv"}, "ConvLSTM over channels"),
    "no peepholes": ("lstmcor_no_peepholes", {"peepholes": False}, "peephole terms"),
    "no field SE": ("lstmcor_no_field_se", {"field_se": False}, "SE on the field"),
}
params = {row: build_lstmcor(input_shape=ds.shape, **switches).count_params()
          for row, (_, switches, _) in VARIANTS.items()}
models = {row: load_weights(shipped_weights(name)) for row, (name, _, _) in VARIANTS.items()}
models["VoxelMorph"] = load_weights(shipped_weights("voxelmorph"))
lines = ["| variant | switches | weights | weights vs full |", "|---|---|---|---|"]
for row, (name, switches, _) in VARIANTS.items():
    assert models[row].count_params() == params[row], f"{name}.keras does not match build_lstmcor(**{switches})"
    lines.append(f"| {row} | `{switches or 'all on'}` | {params[row]:,} | {params[row] - params[FULL]:+,} |")
lines.append(f"| VoxelMorph | (reference) | {models['VoxelMorph'].count_params():,} | "
             f"{models['VoxelMorph'].count_params() - params[FULL]:+,} |")
display(Markdown("\n".join(lines)))

# %%
# The model with every switch of lstmcor.settings.ABLATIONS off, against VoxelMorph, layer by layer.
ALL_OFF = {switch: off for switch, (_, _, off, _) in ABLATIONS.items()}
all_off = build_lstmcor(input_shape=ds.shape, **ALL_OFF)


def weighted_layers(model):
    return {layer.name: layer.count_params() for layer in model.layers if layer.count_params()}


mine, theirs = weighted_layers(all_off), weighted_layers(models["VoxelMorph"])
only_mine = {k: v for k, v in mine.items() if k not in theirs}
only_theirs = {k: v for k, v in theirs.items() if k not in mine}
changed = {k: (theirs[k], mine[k]) for k in mine if k in theirs and mine[k] != theirs[k]}
print(f"[{PRESET}] every switch off ({ALL_OFF}): {all_off.count_params():,} weights, "
      f"VoxelMorph {models['VoxelMorph'].count_params():,} ({all_off.count_params() - models['VoxelMorph'].count_params():+,})")
print("  layers with weights only in the all-off model: "
      + (", ".join(f"{k} ({v:,})" for k, v in only_mine.items()) or "none"))
print("  layers with weights only in VoxelMorph:        "
      + (", ".join(f"{k} ({v:,})" for k, v in only_theirs.items()) or "none"))
print("  same layer, different weights (VoxelMorph -> all off): "
      + (", ".join(f"{k} ({a:,} -> {b:,})" for k, (a, b) in changed.items()) or "none"))
print("  so 'all off' " + ("is VoxelMorph's architecture" if not only_mine and not only_theirs and not changed
                           else "is not VoxelMorph: the layers above are what the five switches leave in place"))

# %% [markdown]
# Every shipped file has exactly the weights that `build_lstmcor` gives for its switches (the
# `assert` above checks it). Note how small most additions are in weights: an SE block on $C$
# channels has $2 C \cdot \max(1, \lfloor C/r \rfloor)$ weights (Eq. (4) has no biases), and the
# peepholes one weight per hidden channel and gate. Weights are not time, though: the ConvLSTM
# adds few weights but runs its 16 steps one after another.
#
# :::{admonition} Exercise 8.1 (experiment): what does one switch change in the output?
# :class: exercise
# A switch changes the weights, but what does it change in what the network *outputs*? To see the
# switch alone, both models must share every other weight. Write `switch_effect(switches)`: build
# the variant `build_lstmcor(input_shape=ds.shape, **switches)`, copy into it the weights of every
# layer of the shipped full model `models[FULL]` with the same name, run both on
# the first two test images (`pair_81`), and return a dict with `"removed"` (weights of the full model
# minus weights of the variant), `"flow_full"` and `"flow_variant"` (the `flow` outputs, `[H, W, 2]`)
# and `"full"` (the full model). Try `{"field_se": False}`: how much larger is the variant's field,
# and why? (Other switches are worth a try too.)
# :::

# %%
m81, f81 = ds.splits["test"][0], ds.splits["test"][1]     # the first two test images
pair_81 = [ds.images[m81][None, ..., None], ds.images[f81][None, ..., None]]

# %% tags=["exercise"] solution="ex8_1"
def switch_effect(switches):
    ...  # your code: {"removed": ..., "flow_full": ..., "flow_variant": ..., "full": ...}


effect_81 = switch_effect({"field_se": False})

# Stuck? Load the solution into a new cell with:  %load solutions/ex8_1.py

# %%
def check_ex81(effect):
    assert isinstance(effect, dict) and {"removed", "flow_full", "flow_variant", "full"} <= set(effect), (
        "Return a dict with the keys removed, flow_full, flow_variant and full.")
    expected = params[FULL] - params["no field SE"]
    assert effect["removed"] == expected, (f"{effect['removed']} weights removed; the field SE block has {expected} "
                                           "(count_params of the full model minus the variant's).")
    variant_flow = np.asarray(effect["flow_variant"], "float64").reshape(ds.shape + (2,))
    w1, w2 = (np.asarray(w) for w in effect["full"].get_layer("field_se").get_weights())
    gates = 1 / (1 + np.exp(-(np.maximum(variant_flow.mean(axis=(0, 1)) @ w1, 0) @ w2)))
    gated = gates * variant_flow
    gap = np.abs(np.asarray(effect["flow_full"]).reshape(variant_flow.shape) - gated).max()
    assert gap <= 1e-3 * np.abs(gated).max() + 1e-9, (
        f"The full model's field should be the variant's times the two gates of Eq. (4), but they differ by "
        f"{gap:.2e} px. Copy every weight of the full model into the variant (same layer names) before comparing.")
    print(f"Correct: with shared weights the full field is the variant's times the gates {np.round(gates, 3)}.")


_ = check(check_ex81, effect_81, exercise="8.1")

# %% [markdown]
# :::{admonition} Discussion
# :class: dropdown
# The SE block on the field adds only the four weights of $W_1$ (1 × 2) and $W_2$ (2 × 1), and
# with every other weight shared its whole effect is to multiply the rows and the columns of the
# field by two global gates (the check verifies exactly that). The gates are sigmoids, so they lie
# in (0, 1): the gated field is always *shorter* than the ungated one, and the ratio printed above
# says by how much for the shipped weights on this pair. Eq. (4) has no biases, so the gates depend
# on the field only through its mean displacement $z$; where the field moves about as much one way
# as the other, $z$ is near zero and both gates sit near $\sigma(0) = 0.5$ whatever the weights
# learned (compare the printed gates with 0.5). The gate cannot bend or reshape the field, only
# rescale its two components. Any difference in Dice between the two trained variants comes from
# that rescaling and from how it changes training, not from a new way to deform the image. Other
# switches (`se_skips`, `funnel`, `peepholes`) can change the field anywhere, because they act before
# the field is formed.
# :::

# %% [markdown]
# ## How the variants were trained
#
# An ablation is only fair if every variant had the same training. The model card states the
# command, preset and seed behind each file, and the logs shipped beside the weights let us check
# the budgets and see the curves. Read the budget before reading the table, and note that this
# chapter scores **one** training of each variant (seed 0): the cell below prints how far apart
# the variants' final validation losses are, a spread that mixes what each switch does with what
# the draw of a training run does.

# %%
card = weights_dir() / "README.md"
if card.is_file():
    display(Markdown("**Model card** (`data/weights/README.md`)\n\n" + card.read_text()))
logs = {}
for row, (name, _, _) in list(VARIANTS.items()) + [("VoxelMorph", ("voxelmorph", {}, None))]:
    path = weights_dir() / f"{name}.log.csv"
    if path.is_file():
        logs[row] = read_log(path)
        print(f"{row:20s} {len(logs[row]['loss']):4d} epochs, final training loss {logs[row]['loss'][-1]:.5f}, "
              f"final validation loss {logs[row].get('val_loss', [np.nan])[-1]:.5f}")
    else:
        print(f"{row:20s} no log at {path}")
budgets = {len(log["loss"]) for log in logs.values()}
print(f"[{PRESET}] " + ("all variants trained for the same number of epochs" if len(budgets) == 1
                        else f"different budgets: {sorted(budgets)} epochs; compare with care"))
val_final = {row: log["val_loss"][-1] for row, log in logs.items() if row in VARIANTS and len(log.get("val_loss", []))}
if len(val_final) > 1:
    low, high = min(val_final, key=val_final.get), max(val_final, key=val_final.get)
    print(f"[{PRESET}] final validation loss of the LSTM-COR variants: from {val_final[low]:.5f} ({low}) to "
          f"{val_final[high]:.5f} ({high}), {100 * (val_final[high] / val_final[low] - 1):.0f} % apart, "
          f"one training (seed) each: the spread holds both the switches' effects and seed-to-seed variation")

# %% mystnb={"figure": {"caption": "Training loss of every shipped variant, raw and with a moving average (as in Fig. 5).", "name": "fig-08-loss"}}
if logs:
    n_epochs = min(len(log["loss"]) for log in logs.values())
    loss_curves(logs, key="loss", window=max(1, min(25, n_epochs // 10)))
    plt.show()

# %% [markdown]
# ## The same Table 1, for every variant
#
# The evaluation of chapter {doc}`07_evaluation`, on the same seeded test pairs, without the slow
# classical row. Times are medians of repeated batch-1 calls on the device named in the header.

# %%
ev = evaluate(models, data=ds, split="test", n_pairs=N_PAIRS, seed=SEED, classical=False,
              timing_runs=TIMING_RUNS, out=OUTPUT_DIR, progress=False)
display(Markdown(f"**[{PRESET}] Ablations on {len(ev.pairs)} test pairs, mean (std over pairs)**\n\n" + ev.table()))


# %% [markdown]
# ## What each addition buys, and what it costs
#
# For each addition we take, pair by pair, the full model's score minus the score of the variant
# without it: a positive $\Delta$Dice or a negative $\Delta$MSE means the addition helps. Its
# uncertainty is the standard error of the mean difference over pairs, and the Wilcoxon
# signed-rank test asks whether the differences lean one way more than chance would. The cost is
# the difference in median time per pair, and in weights.

# %%
def per_pair(row, metric):
    return {(r["moving"], r["fixed"]): r[metric] for r in ev.rows if r["method"] == row}


def addition_effect(row, metric):
    full, ablated = per_pair(FULL, metric), per_pair(row, metric)
    diffs = np.array([full[p] - ablated[p] for p in full if np.isfinite(full[p]) and np.isfinite(ablated[p])])
    try:
        p_value = float(stats.wilcoxon(diffs).pvalue) if np.any(diffs != 0) else 1.0
    except ValueError:
        p_value = float("nan")
    se = float(np.std(diffs, ddof=1) / np.sqrt(diffs.size)) if diffs.size > 1 else float("nan")
    return float(np.mean(diffs)), se, p_value


effects = {}
for row, (_, _, addition) in VARIANTS.items():
    if addition is None:
        continue
    dice_mean, dice_se, dice_p = addition_effect(row, "dice")
    mse_mean, mse_se, mse_p = addition_effect(row, "mse")
    effects[addition] = {
        "row": row, "dice": dice_mean, "dice_se": dice_se, "dice_p": dice_p,
        "mse": mse_mean, "mse_se": mse_se, "mse_p": mse_p,
        "ms": 1000 * (ev.summary[FULL]["seconds_median"] - ev.summary[row]["seconds_median"]),
        "weights": params[FULL] - params[row],
    }
spread = ev.summary[FULL]["dice_std"]
lines = ["| addition | ΔDice (± SE) | Wilcoxon p | ΔMSE (± SE) | Wilcoxon p | Δtime (ms/pair) | Δweights |",
         "|---|---|---|---|---|---|---|"]
for addition, e in effects.items():
    lines.append(f"| {addition} | {e['dice']:+.4f} (± {e['dice_se']:.4f}) | {e['dice_p']:.3g} | "
                 f"{e['mse']:+.6f} (± {e['mse_se']:.6f}) | {e['mse_p']:.3g} | {e['ms']:+.1f} | {e['weights']:+,} |")
display(Markdown(f"**[{PRESET}] Full model minus the variant without each addition, {len(ev.pairs)} pairs** "
                 f"(pair-to-pair spread of the full model's Dice: {spread:.4f})\n\n" + "\n".join(lines)))
with open(os.path.join(OUTPUT_DIR, "effects.json"), "w") as handle:
    json.dump({"preset": PRESET, "pairs": len(ev.pairs), "device": ev.device, "effects": effects}, handle, indent=2)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Each addition of the paper as a point: what it costs in time per pair (across) against what it changes in Dice and MSE (up: better). Vertical bars: standard error over pairs; horizontal bars: an estimate of the timing noise.", "name": "fig-08-cost-benefit"}}
fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.4))
colours = plt.cm.tab10(np.arange(len(effects)))
runs = ev.summary[FULL]["timing_runs"]
for ax, metric, sign, label in [(axes[0], "dice", 1, "ΔDice (higher: the addition helps)"),
                                (axes[1], "mse", -1, "−ΔMSE (higher: the addition helps)")]:
    for colour, (addition, e) in zip(colours, effects.items()):
        time_noise = 1000 * np.hypot(ev.summary[FULL]["seconds_std"], ev.summary[e["row"]]["seconds_std"]) / np.sqrt(runs)
        ax.errorbar(e["ms"], sign * e[metric], xerr=time_noise, yerr=e[f"{metric}_se"], fmt="o", color=colour,
                    capsize=4, markersize=7, label=addition)
    ax.axhline(0, color="gray", linewidth=1)
    ax.axvline(0, color="gray", linewidth=0.6, linestyle=":")
    ax.set_xlabel("Δtime per pair (ms): what the addition costs")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
band = spread / np.sqrt(len(ev.pairs))
axes[0].axhspan(-band, band, color="tab:gray", alpha=0.15, label="Dice spread / √pairs")
axes[0].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
fig.suptitle(f"[{PRESET}] the paper's additions, one at a time ({len(ev.pairs)} test pairs, {ev.device})")
fig.tight_layout()
plt.show()

# %% mystnb={"figure": {"caption": "Per-pair Dice of every variant (one line per test pair), so that the size of the differences can be seen against the spread between pairs.", "name": "fig-08-pairs"}}
rows_order = list(VARIANTS) + ["VoxelMorph"]
dice_table = np.array([[per_pair(row, "dice")[p] for row in rows_order] for p in per_pair(FULL, "dice")])
fig, ax = plt.subplots(figsize=(10, 3.8))
for values in dice_table:
    ax.plot(range(len(rows_order)), values, color="tab:blue", alpha=0.25, linewidth=0.8)
ax.plot(range(len(rows_order)), dice_table.mean(0), "o-", color="black", label="mean over pairs")
ax.set_xticks(range(len(rows_order)), rows_order, rotation=15, fontsize=9)
ax.set_ylabel("Dice")
ax.set_title(f"[{PRESET}] Dice per test pair and variant")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()


# %% [markdown]
# ## Look at one variant on one pair
#
# Numbers hide what a difference in Dice looks like. Pick a variant and a test pair: the row
# shows the moving and fixed images, what the variant makes of the moving image, the difference
# to the fixed image after registration, and the field as a colour wheel (hue: direction,
# brightness: length). The static figure after it shows the full model and every variant on the
# first test pair.

# %%
import ipywidgets as widgets

from lstmcor.registration import register
from lstmcor.plots import flow_to_rgb, live_view


def show_variant(row, k):
    """One variant on test pair number k: moving, fixed, moved, difference after, field."""
    m, f = ev.pairs[k]
    out = register(models[row], ds.images[m], ds.images[f])
    moved, flow = out["moved"][0, ..., 0], out["flow"][0]
    fig, axes = plt.subplots(1, 5, figsize=(13, 2.9))
    views = [(ds.images[m], "moving", "gray"), (ds.images[f], "fixed", "gray"), (moved, "moved", "gray"),
             (moved - ds.images[f], "diff after", "RdBu_r")]
    for ax, (image, title, cmap) in zip(axes, views):
        diverging = cmap == "RdBu_r"
        ax.imshow(image, cmap=cmap, vmin=-0.5 if diverging else 0, vmax=0.5 if diverging else 1)
        ax.set_title(title, fontsize=10)
    axes[4].imshow(flow_to_rgb(flow))
    axes[4].set_title("field", fontsize=10)
    for ax in axes:
        ax.axis("off")
    dice_k = [r["dice"] for r in ev.rows if r["method"] == row and (r["moving"], r["fixed"]) == (m, f)][0]
    fig.suptitle(f"[{PRESET}] {row}, test pair {k} ({m} -> {f}): Dice {dice_k:.3f}", fontsize=11)
    fig.tight_layout()
    return fig


# %% tags=["widget"]
display(live_view(show_variant,
                  row=widgets.Dropdown(options=list(VARIANTS) + ["VoxelMorph"], value=FULL, description="variant"),
                  k=widgets.IntSlider(0, 0, len(ev.pairs) - 1, description="test pair")))

# %% mystnb={"figure": {"caption": "The widget's default view: the full LSTM-COR on the first test pair.", "name": "fig-08-variant"}}
show_variant(FULL, 0)
plt.show()

# %% [markdown]
# The same pair for every variant, the full model first, VoxelMorph last:

# %%
for row in [r for r in VARIANTS if r != FULL] + ["VoxelMorph"]:
    show_variant(row, 0)
    plt.show()


# %% [markdown]
# ## What the ablation says, in plain words
#
# Written from this run's numbers. A variant is said to score differently from the full model
# only when the paired test over the test pairs gives $p < 0.05$; otherwise the difference is
# reported as within pair-to-pair noise, with its size measured against the spread of Dice
# between pairs. Time differences of a few milliseconds on a CPU are within the timing noise (the
# standard deviations in the table above). The paired test sees only the test pairs: it compares
# two trained networks, not two training recipes.

# %%
def plain(addition, e):
    size = abs(e["dice"]) / spread if spread > 0 else float("nan")
    if np.isfinite(e["dice_p"]) and e["dice_p"] < 0.05:
        word = "higher" if e["dice"] > 0 else "lower"
        judgement = (f"the full model's Dice is **{word}** than without it, beyond pair-to-pair noise: "
                     f"{e['dice']:+.4f} (p = {e['dice_p']:.3g})")
    else:
        judgement = (f"cannot be told from pair-to-pair noise: Dice {e['dice']:+.4f} ± {e['dice_se']:.4f} "
                     f"(p = {e['dice_p']:.3g})")
    mse_word = "lower" if e["mse"] < 0 else "higher"
    return (f"- *{addition}*: {judgement}, {100 * size:.1f} % of the pair-to-pair spread of Dice; with it MSE is "
            f"{mse_word} by {abs(e['mse']):.6f} (p = {e['mse_p']:.3g}); it costs {e['ms']:+.1f} ms per pair and "
            f"{e['weights']:+,} weights.")


vxm_gap = ev.summary[FULL]["dice_mean"] - ev.summary["VoxelMorph"]["dice_mean"]
time_full, time_vxm = ev.summary[FULL]["seconds_median"], ev.summary["VoxelMorph"]["seconds_median"]
beaten = [e["row"] for e in effects.values() if np.isfinite(e["dice_p"]) and e["dice_p"] < 0.05 and e["dice"] > 0]
dearest = max(effects, key=lambda a: effects[a]["ms"])
text = [f"**[{PRESET}] The additions on our data** ({len(ev.pairs)} test pairs, weights trained as the model card says)\n"]
text += [plain(addition, e) for addition, e in effects.items()]
text.append(f"\nAll together, LSTM-COR's Dice is {vxm_gap:+.4f} against VoxelMorph's, at {1000 * time_full:.1f} ms against "
            f"{1000 * time_vxm:.1f} ms per pair. "
            + (f"Variants the full model beats in Dice beyond pair-to-pair noise: {', '.join(beaten)}. " if beaten
               else "The full model beats no variant in Dice beyond pair-to-pair noise on these pairs. ")
            + f"The most expensive addition in time is the {dearest} ({effects[dearest]['ms']:+.1f} ms per pair).")
text.append("\nThis chapter scores one training of each variant (seed 0, see the model card), so no difference above can be "
            "credited to its addition: a second training of the same variant with another seed could move its scores as well, and "
            "one seed per variant cannot tell the two apart. `lstmcor sweep` measures that seed-to-seed variation "
            "(see the note below).")
display(Markdown("\n".join(text)))
with open(os.path.join(OUTPUT_DIR, "ablation_summary.md"), "w") as handle:
    handle.write("\n".join(text) + "\n")

# %% [markdown]
# :::{admonition} One seed per variant cannot separate an effect from the draw of the training
# :class: note
# Each variant scored here is one training run. Its scores are the effect of its switch *plus* the
# luck of its seed (initial weights, order of the batches), and with one run per variant the two
# cannot be told apart: this chapter has no measure of how far two seeds of the *same* variant
# land from each other, so it cannot say whether any difference above exceeds that. The package
# measures it: `lstmcor sweep` trains every variant with several seeds, scores all of them on the
# same test pairs and tests each difference against the seed-to-seed spread, for example
# `lstmcor sweep --models lstmcor --seeds 0 1 2 --ablations no_funnel conv --out runs/ablations`
# (on a GPU at `--preset paper`; `--preset ci` only checks that it runs). Longer training and more
# test pairs help too. None of this changes the time column, the one measurement here that does
# not depend on training.
# :::
#
# ## Train an ablation yourself
#
# Every variant comes from the same trainer with one flag. On a GPU kernel, with the budget of
# the paper:
#
# ```bash
# lstmcor train --model lstmcor --preset paper --no-se-skips       --out runs/no-se-skips
# lstmcor train --model lstmcor --preset paper --no-funnel         --out runs/no-funnel
# lstmcor train --model lstmcor --preset paper --recurrence conv   --out runs/conv
# lstmcor train --model lstmcor --preset paper --no-peepholes      --out runs/no-peepholes
# lstmcor train --model lstmcor --preset paper --no-field-se       --out runs/no-field-se
# lstmcor evaluate --weights runs/*/model.keras --names ... --pairs 0
# ```
#
# or, in Python, `lstmcor.training.train("lstmcor", PRESET, out=..., model_options={"funnel": False})`.
# We do not train them live here: a fair comparison needs the same (long) budget for every
# variant, and a few minutes of CPU training per variant would only add noise to the table.
#
# ## Summary
#
# - Each addition of the paper is a switch of `build_lstmcor`; the shipped ablation weights were
#   trained like the full model, with one switch off.
# - The additions are cheap in weights: a few hundred for the SE blocks, a dozen for the
#   peepholes, a few thousand for the funnel (it widens the first decoder convolution); the
#   ConvLSTM even has fewer weights than the plain convolution that replaces it. In time it is
#   another story: the ConvLSTM runs its steps one after another, and the table above shows
#   what that costs per pair on this device.
# - Whether a variant scores differently from the full model is judged pair by pair, against the
#   spread between pairs and with a paired test; the paragraph above says it for this run. With
#   one training per variant that compares two trained networks; crediting a difference to an
#   addition needs several seeds per variant (`lstmcor sweep`).
# - With every switch off the model is not VoxelMorph: the flow head's SE block and depthwise layer
#   and the convolution that stands in for the ConvLSTM stay (the layer list above).
#
# **Next:** {doc}`09_beyond_the_paper` goes beyond the paper: fields that cannot fold and a
# similarity that ignores contrast. The {doc}`../readings` page lists every place where we had to
# choose a reading of the paper; changing one of them and rerunning chapters 6 to 8 is another
# natural experiment.
