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
# # 2. A U-Net with SE on the skips and a funnel
#
# The first stage of LSTM-COR {cite:p}`alsadi2022lstmcor` is its **sequence generator**: a
# U-Net that reads the moving and the fixed image together and emits 16 feature maps, which the
# next stage will read one after the other as a sequence ({doc}`03_convlstm_channels`). It is the
# U-Net of VoxelMorph {cite:p}`balakrishnan2019voxelmorph` with two additions: an SE block
# ({doc}`01_squeeze_excitation`) on every skip connection, and a *funnel* that carries the
# top-level features straight down to the bottleneck. The paper gives these in words and in its
# Fig. 3, without equations; this chapter builds them, counts what they cost, and shows what the
# generator emits.
#
# **Learning goals.** After this chapter you can
#
# 1. explain the encoder, the decoder and the skip connections of a U-Net, and trace the shapes;
# 2. say why LSTM-COR puts channel attention on the skips only, and what the funnel connects;
# 3. count the parameters and the arithmetic these additions cost against a plain U-Net, and time them;
# 4. look at the 16 feature maps the generator emits for a brain pair.

# %% tags=["parameters"]
PRESET = "quick"          # "ci" (seconds) | "quick" (minutes, laptop CPU) | "paper" (GPU)
DATA = "default"
SEED = 0
OUTPUT_DIR = "outputs/02_unet_se_skips"

# %%
import os
import time

import keras
import matplotlib.pyplot as plt
import numpy as np

import lstmcor
from lstmcor.diagrams import unet_diagram
from lstmcor.exercises import check
from lstmcor.models import build_lstmcor, build_voxelmorph

os.makedirs(OUTPUT_DIR, exist_ok=True)
keras.utils.set_random_seed(SEED)
ds = lstmcor.load_dataset(DATA)
H, W = ds.shape
TIMING_RUNS = {"ci": 10, "quick": 40, "paper": 100}[PRESET]
print(f"[{PRESET}] images {H} x {W}; forward passes timed {TIMING_RUNS} times each")

# %% [markdown]
# ## The U-Net in three sentences
#
# A U-Net {cite:p}`ronneberger2015unet` has an **encoder** that alternates convolutions with
# down-sampling, so that deeper levels see larger regions of the image with fewer pixels (context:
# "this is the left ventricle, and it is shifted"); a **decoder** that up-samples back to full
# resolution; and **skip connections** that hand each encoder level's features to the decoder
# level of the same size, where they are concatenated. The skips return the fine detail that
# pooling threw away (where exactly is the edge of the ventricle), which a registration needs
# because it must say, for every pixel, where to look.
#
# In VoxelMorph and in LSTM-COR the input is the pair itself, `concat(moving, fixed)` of shape
# `[B, H, W, 2]`; each level is a 3 × 3 convolution with LeakyReLU(0.2), the encoder has 16, 32,
# 32, 32 features and halves the size four times, so the bottom of the U sits at $H/16 \times W/16$
# (10 × 12 for our 160 × 192 slices).
#
# ## Channel attention on the skips only
#
# A skip hands over *every* channel of an encoder level, useful or not, and the decoder must sort
# them out. USE-Net {cite:p}`rundo2019usenet` added an SE block after every step of the encoder
# and the decoder of a U-Net so that each stage could re-weight its channels. LSTM-COR keeps the
# idea but only where the two paths meet: each skip passes through its own SE block before it is
# concatenated. The argument of the paper is one of cost: the skips are where the encoder's and
# the decoder's features, of different meaning (the "semantic gap"), are put side by side, so
# that is where weighting helps most, and four blocks cost less than one after every layer. We
# measure that cost below.
#
# ## The funnel connection
#
# The paper also connects "the highest layers" of the U-Net to its "lowest levels", after the
# channel attention on the skips, so that the bottleneck sees the finest features too. It gives
# no diagram of this operation, so the package takes a reading of it.
#
# :::{admonition} Our reading: the funnel
# :class: note
# The SE-weighted skip of the finest level (16 channels at full resolution) is average-pooled by
# $2^{L}$ for $L$ levels, 16 here, down to the bottleneck's size, and concatenated with the
# bottleneck features before the decoder starts. Average pooling keeps a summary of the fine
# features in each 16 × 16 block without adding weights; the only new parameters are those of
# the first decoder convolution, which now reads 16 more channels. See {doc}`../readings`.
# :::
#
# ## Building the models
#
# `build_lstmcor` builds the whole LSTM-COR network; its sequence generator ends in the layer
# `sequence_act`, 16 channels at full resolution. For comparison we build the same network with
# both additions switched off (`se_skips=False, funnel=False`), a plain U-Net, and VoxelMorph.
# We cut each one at the end of its U-Net with `keras.Model(model.inputs, layer.output)`.

# %%
full = build_lstmcor(input_shape=(H, W))
plain = build_lstmcor(input_shape=(H, W), se_skips=False, funnel=False, name="lstmcor_plain_unet")
vxm = build_voxelmorph(input_shape=(H, W))


def sequence_generator(model):
    return keras.Model(model.inputs, model.get_layer("sequence_act").output, name=f"{model.name}_generator")


gen_full, gen_plain = sequence_generator(full), sequence_generator(plain)
gen_vxm = keras.Model(vxm.inputs, vxm.get_layer("full2_act").output, name="voxelmorph_unet")
print(f"LSTM-COR sequence generator: output {gen_full.output.shape}, {gen_full.count_params():,} parameters")

# %% [markdown]
# The layers of the generator, in order (skip SE blocks and the funnel in bold):

# %%
from IPython.display import Markdown, display

rows = ["| layer | type | output shape | parameters |", "|---|---|---|---:|"]
for layer in gen_full.layers:
    if layer.name in ("moving", "fixed"):
        continue
    name = f"**{layer.name}**" if (layer.name.endswith("_se") or "funnel" in layer.name) else layer.name
    shape = "×".join(str(d) for d in layer.output.shape[1:])
    rows.append(f"| {name} | {type(layer).__name__} | {shape} | {layer.count_params():,} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# The same as a picture, drawn from the model's own layer shapes: boxes are feature maps
# (height ∝ resolution, labelled with channels × size), arrows the operations.

# %% mystnb={"figure": {"caption": "LSTM-COR's sequence generator, drawn from the built model: encoder (left) and decoder (right) in blue, skip connections through SE blocks (orange boxes, brown arrows), and the funnel from the SE-weighted top skip to the bottleneck (dashed brown arrow, our reading).", "name": "fig-02-diagram"}}
unet_diagram(full)   # lstmcor.diagrams: boxes and arrows read from the model
plt.show()

# %% [markdown]
# ## What the additions cost: parameters
#
# An SE block on a skip of $C$ channels with $r = 8$ has $2C\max(1, C//8)$ weights
# ({doc}`01_squeeze_excitation`): 64 for the 16-channel top skip, 256 for each 32-channel skip.
# The funnel adds no weights of its own, but the first decoder convolution reads 16 more input
# channels: $3 \cdot 3 \cdot 16 \cdot 32 = 4{,}608$ weights.

# %%
def params_of(model, names):
    return sum(model.get_layer(n).count_params() for n in names)


levels = 4
se_names = [f"skip{k}_se" for k in range(levels)]
se_params = params_of(full, se_names)
funnel_params = full.get_layer("dec0_conv").count_params() - plain.get_layer("dec0_conv").count_params()
print(f"plain U-Net generator            {gen_plain.count_params():8,d}")
print(f"+ SE on the 4 skips              {se_params:8,d}   ({', '.join(f'{n}: {full.get_layer(n).count_params()}' for n in se_names)})")
print(f"+ funnel (wider dec0_conv)       {funnel_params:8,d}")
print(f"= LSTM-COR generator             {gen_full.count_params():8,d}   "
      f"(+{100 * (gen_full.count_params() / gen_plain.count_params() - 1):.1f} %)")
print(f"VoxelMorph's U-Net (up to full2_act) {gen_vxm.count_params():,}: the plain generator is exactly VoxelMorph's U-Net")
print(f"whole models: LSTM-COR {full.count_params():,}, VoxelMorph {vxm.count_params():,}")
assert gen_full.count_params() == gen_plain.count_params() + se_params + funnel_params
assert gen_plain.count_params() == gen_vxm.count_params()

# %% [markdown]
# With both additions switched off, the generator is layer for layer VoxelMorph's U-Net
# (encoder 16, 32, 32, 32; decoder 32, 32, 32, 32, 32, 16 and a last 16-channel convolution),
# which makes the comparisons of chapter {doc}`08_ablations` controlled ones.
#
# ## What they cost: arithmetic and time
#
# Parameters are not the whole cost: a weight of a full-resolution layer is used at every one of
# its 30,720 pixels. We count multiply-accumulate operations (MACs) of a forward pass from the
# layer shapes, a convolution costing $H \cdot W \cdot k^2 \cdot C_{in} \cdot C_{out}$, an SE
# block about $2HWC$ (the mean and the scaling) plus its tiny dense layers. Then we time the
# generators on this machine with `predict_on_batch`, batch 1, after a warm-up, the two models
# taking turns so that a busy machine slows both alike.

# %%
def macs(model):
    """Multiply-accumulates of Conv2D and SE layers in one forward pass (batch 1)."""
    total = {"conv": 0, "se": 0}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            h, w, c_out = layer.output.shape[1:]
            k = layer.kernel_size[0] * layer.kernel_size[1]
            total["conv"] += h * w * k * layer.input.shape[-1] * c_out
        elif isinstance(layer, lstmcor.SqueezeExcitation):
            h, w, c = layer.output.shape[1:]
            total["se"] += 2 * h * w * c + layer.count_params()
    return total


def median_times(models, runs):
    """Median and interquartile range of batch-1 forward passes, the models taking turns."""
    x = [ds.images[:1, ..., None], ds.images[1:2, ..., None]]
    for model in models.values():
        for _ in range(3):
            model.predict_on_batch(x)              # warm-up (builds the compiled function)
    times = {label: [] for label in models}
    for _ in range(runs):
        for label, model in models.items():       # interleaved, so load changes hit both alike
            start = time.perf_counter()
            model.predict_on_batch(x)
            times[label].append(time.perf_counter() - start)
    return {label: (float(np.median(t)), float(np.percentile(t, 75) - np.percentile(t, 25))) for label, t in times.items()}


generators = {"plain U-Net": gen_plain, "LSTM-COR generator": gen_full}
timed = median_times(generators, TIMING_RUNS)
cost = {}
for label, model in generators.items():
    ops_ = macs(model)
    cost[label] = {"params": model.count_params(), "conv": ops_["conv"], "se": ops_["se"],
                   "s": timed[label][0], "iqr": timed[label][1]}
from lstmcor.runtime import device_name
device = device_name()
print(f"[{PRESET}] batch 1, {H}x{W}, median of {TIMING_RUNS} runs on {device}")
print("                      parameters   conv MMACs   SE MMACs   ms per pair")
for label, c in cost.items():
    print(f"  {label:18s}  {c['params']:10,d}   {c['conv'] / 1e6:10.1f}   {c['se'] / 1e6:8.2f}   "
          f"{1000 * c['s']:7.1f} (IQR {1000 * c['iqr']:.1f})")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Cost of the sequence generator with and without the paper's additions: parameters, arithmetic (millions of multiply-accumulates) and measured time per pair on this machine.", "name": "fig-02-cost"}}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
labels = list(cost)
colours = ["#bdbdbd", "#fd8d3c"]
axes[0].bar(labels, [cost[k]["params"] / 1e3 for k in labels], color=colours)
axes[0].set_ylabel("thousand parameters")
axes[1].bar(labels, [cost[k]["conv"] / 1e6 for k in labels], color=colours, label="convolutions")
axes[1].bar(labels, [cost[k]["se"] / 1e6 for k in labels], bottom=[cost[k]["conv"] / 1e6 for k in labels],
            color="black", label="SE blocks")
axes[1].set_ylabel("million MACs")
axes[1].legend(fontsize=8)
axes[2].bar(labels, [1000 * cost[k]["s"] for k in labels], yerr=[1000 * cost[k]["iqr"] for k in labels],
            color=colours, capsize=4)
axes[2].set_ylabel(f"ms per pair ({device})")
for ax in axes:
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    ax.grid(axis="y", alpha=0.3)
fig.suptitle(f"[{PRESET}] sequence generators at {H}x{W}, batch 1", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# The two additions cost a few per cent of parameters and almost nothing in arithmetic; the
# measured times differ by little more than the noise of the measurement. This fits the paper's
# argument for putting SE on the skips only. Note that the whole LSTM-COR model is much slower
# than VoxelMorph (the paper's Table 1 and Fig. 6): that cost comes from the ConvLSTM, which
# runs 16 time steps at full resolution ({doc}`03_convlstm_channels`), not from the U-Net.
#
# ## The sequence it emits
#
# The generator's output is a stack of 16 full-resolution feature maps. The next stage reads
# them as a *sequence*, one map per time step. Here they are for one test pair (untrained weights
# unless trained ones ship with the package; the text below says which). Even untrained, the maps
# are mixtures of the two images and of their edges; training turns them into whatever the
# ConvLSTM and the flow head find useful for predicting the displacement.

# %%
try:
    from lstmcor.evaluation import load_weights, shipped_weights
    trained = load_weights(shipped_weights("lstmcor"))
    gen_show = sequence_generator(trained)
    weights_note = "shipped trained weights"
except (FileNotFoundError, ValueError):
    gen_show = gen_full
    weights_note = "UNTRAINED weights (no shipped weights found)"
pairs = lstmcor.data.pair_indices(ds, "test", 8, seed=SEED)
mov = np.stack([ds.images[a] for a, _ in pairs])[..., None]
fix = np.stack([ds.images[b] for _, b in pairs])[..., None]
sequences = np.asarray(gen_show.predict_on_batch([mov, fix]))
print(f"using {weights_note}; sequences {sequences.shape} for {len(pairs)} test pairs")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The 16 feature maps (the 'sequence') that the generator emits for one test pair, each on its own colour scale; the moving and fixed images are on the left.", "name": "fig-02-sequence"}}
def show_sequence(pair=0):
    fig = plt.figure(figsize=(14, 7.4))
    grid = fig.add_gridspec(4, 6, width_ratios=[1.3, 0.15, 1, 1, 1, 1], wspace=0.08, hspace=0.25)
    a, b = pairs[pair]
    for row, (image, title) in enumerate(((mov[pair, ..., 0], f"moving #{a}"), (fix[pair, ..., 0], f"fixed #{b}"))):
        ax = fig.add_subplot(grid[2 * row:2 * row + 2, 0])
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    for t in range(16):
        ax = fig.add_subplot(grid[t // 4, 2 + t % 4])
        ax.imshow(sequences[pair, ..., t], cmap="magma")
        ax.set_title(f"t = {t}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"sequence of 16 maps, pair {a} -> {b} ({weights_note})", fontsize=10)
    plt.show()


show_sequence(0)


# %% [markdown]
# Explore other pairs and look closely at one map at a time (in JupyterLab; move a slider to
# draw, the figure after the widget shows its default view):

# %%
def show_map(pair=0, channel=0):
    a, b = pairs[pair]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    axes[0].imshow(mov[pair, ..., 0], cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"moving #{a}")
    axes[1].imshow(fix[pair, ..., 0], cmap="gray", vmin=0, vmax=1)
    axes[1].set_title(f"fixed #{b}")
    im = axes[2].imshow(sequences[pair, ..., channel], cmap="magma")
    axes[2].set_title(f"sequence map t = {channel}")
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    plt.show()


# %% tags=["widget"]
import ipywidgets as widgets
from IPython.display import display


from lstmcor.plots import live_view  # controls + a view that redraws on change

display(live_view(show_map, pair=widgets.IntSlider(0, 0, len(pairs) - 1, description="pair"),
                  channel=widgets.IntSlider(0, 0, 15, description="map t")))

# %% mystnb={"figure": {"caption": "One map of the sequence, next to the pair that produced it (the widget's default view).", "name": "fig-02-map"}}
show_map(0, 0)

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 2.1 (experiment): what happens to the skip gates when the contrast changes?
# :class: exercise
# An SE block on a skip decides its channel weights from one number per channel, the mean of the
# map. What happens to those gates when the fixed image of a pair gets another contrast?
# Write `skip_gates(model, moving, fixed)`, which returns the gates of the four skip SE blocks for
# one pair (`moving`, `fixed` of shape `[1, H, W, 1]`) as a list of four NumPy vectors, one per
# `skip{k}_se` (hint: `keras.Model(model.inputs, model.get_layer(name).input)` gives what enters
# the block, and the layer's `gates(x)` its gates, shape `[1, C]`). Then compare the first test
# pair with the same pair whose fixed image is `fix[:1] ** 0.5` (a gamma curve that brightens dark
# tissue): how far does the largest gate of each skip move, against the spread of the gates?
# :::

# %% tags=["exercise"] solution="ex2_1"
def skip_gates(model, moving, fixed):
    ...  # your code: a list of 4 arrays, the gates of skip0_se ... skip3_se


# Stuck? Load the solution into a new cell with:  %load solutions/ex2_1.py

# %%
def check_ex21(skip_gates, model, moving, fixed):
    """The student's gates against Eq. (4) in NumPy, on the layer's own weights, for two pairs."""
    layers = [model.get_layer(f"skip{k}_se") for k in range(4)]
    entering = keras.Model(model.inputs, [layer.input for layer in layers])
    for fixed_image in (fixed, fixed ** 0.5):
        got = skip_gates(model, moving, fixed_image)
        assert got is not None and len(got) == 4, "Return a list of four gate vectors, one per skip0_se ... skip3_se."
        for k, (layer, x) in enumerate(zip(layers, entering([moving, fixed_image]))):
            w1, w2 = (keras.ops.convert_to_numpy(w).astype("float64") for w in layer.weights)
            z = keras.ops.convert_to_numpy(x).astype("float64").mean(axis=(1, 2))
            want = 1 / (1 + np.exp(-(np.maximum(z @ w1, 0) @ w2)))[0]
            mine = np.asarray(got[k]).reshape(-1)
            assert mine.shape == want.shape, (
                f"skip{k}: {mine.shape[0]} gates, the block has {want.shape[0]} channels (one gate per channel).")
            assert np.allclose(mine, want, atol=1e-4), (
                f"skip{k}: your gates differ from Eq. (4) by up to {np.abs(mine - want).max():.2e}. Feed the layer "
                "its input (the skip before the SE block), not its output.")
    print("Correct: your gates are Eq. (4) on what enters each skip SE block, for both contrasts.")


_ = check(check_ex21, skip_gates, gen_show, mov[:1], fix[:1], exercise="2.1")

# %% [markdown]
# :::{admonition} Discussion
# :class: dropdown
# Each gate is a function of the channel means of the whole map, so it can only react to global
# statistics (how bright, how much edge), never to where something is. A gamma curve changes
# those means, and the table above shows how far each skip's gates move in reply. Read the change
# against the spread of the gates across channels: a change much smaller than the spread means
# the block ranks its channels by what they represent, whatever the contrast; a change of the
# order of the spread means the attention itself depends on brightness, so a network trained on
# one contrast would weight its skips differently on another. With untrained weights the gates
# carry no learned preference at all; with the shipped weights they show what training made of
# them. Chapter {doc}`09_beyond_the_paper` measures what a change of contrast does to a whole
# registration.
# :::

# %% [markdown]
# :::{admonition} Exercise 2.2: how far does the funnel pool?
# :class: exercise
# The funnel brings the top skip (full resolution) to the bottleneck. Write `funnel_factor(levels)`,
# the pooling factor along each axis for a U-Net with `levels` down-sampling steps, and
# `funnel_shape(H, W, levels)`, the height and width of the pooled map. The check builds models
# with 3, 4 and 5 levels and reads their `funnel_pool` layer.
# :::

# %% tags=["exercise"] solution="ex2_2"
def funnel_factor(levels):
    ...  # your code


def funnel_shape(H, W, levels):
    ...  # your code


# Stuck? Load the solution into a new cell with:  %load solutions/ex2_2.py

# %%
def check_ex22(funnel_factor, funnel_shape):
    for n_levels, size in ((3, (64, 96)), (4, (160, 192)), (5, (64, 128))):
        model = full if n_levels == 4 else build_lstmcor(input_shape=size, enc_features=(16,) + (32,) * (n_levels - 1),
                                                         dec_features=(32,) * n_levels + (16,))
        pool = model.get_layer("funnel_pool")
        assert funnel_factor(n_levels) == pool.pool_size[0], (
            f"{n_levels} levels: you say {funnel_factor(n_levels)}, the model pools by {pool.pool_size[0]}. "
            "Each level halves the size once.")
        want = tuple(pool.output.shape[1:3])
        assert tuple(funnel_shape(*size, n_levels)) == want, (
            f"{n_levels} levels at {size}: you say {funnel_shape(*size, n_levels)}, the pooled map is {want}.")
    print(f"Correct: 4 levels pool by {funnel_factor(4)}, so the 160 x 192 top skip becomes "
          f"{funnel_shape(160, 192, 4)}, the size of the bottleneck.")


_ = check(check_ex22, funnel_factor, funnel_shape, exercise="2.2")

# %% [markdown]
# ## Summary
#
# * LSTM-COR's sequence generator is VoxelMorph's U-Net (encoder 16, 32, 32, 32; four halvings;
#   decoder back to full size) with an SE block on each of the four skips, as a lighter variant of
#   USE-Net's SE after every stage, and a funnel that, in our reading, average-pools the
#   SE-weighted top skip by 16 and concatenates it to the bottleneck.
# * The additions cost about 5,400 parameters (a few per cent) and a negligible share of the
#   arithmetic; the generator ends in 16 full-resolution maps.
#
# **Next:** those 16 maps become 16 time steps of a sequence, read by a convolutional LSTM with
# peepholes: {doc}`03_convlstm_channels`.
