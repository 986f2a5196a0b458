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
# # 4. The flow head: from 64 channels to a displacement field
#
# The ConvLSTM of {doc}`03_convlstm_channels` hands over `n·F = 64` feature channels at full
# resolution. The *flow head* of LSTM-COR {cite:p}`alsadi2022lstmcor` turns them into the
# displacement field $D$, two numbers per pixel: a squeeze-and-excitation block, a **depthwise**
# convolution ([Eq. (17)](#eq-paper-17)) and a final convolution to $\phi = 2$ channels
# ([Eq. (18)](#eq-paper-18)). This chapter takes the head apart, measures what the depthwise
# convolution saves, explains why the last layer starts almost at zero, and shows how to *look*
# at a displacement field.
#
# **Learning goals.** After this chapter you can
#
# - say what a depthwise convolution computes, count its parameters and multiply-adds, and
#   compare them with an ordinary convolution;
# - write a depthwise convolution in NumPy and check it against Keras;
# - explain why the flow convolution is initialised with a tiny normal distribution (start from
#   the identity warp);
# - read a displacement field drawn as arrows, as a colour wheel and as a warped grid;
# - assemble the whole LSTM-COR network from the package's blocks as a functional `keras.Model`.

# %% tags=["parameters"]
PRESET = "quick"          # "ci" (seconds) | "quick" (minutes, laptop CPU) | "paper" (GPU)
DATA = "default"
SEED = 0
OUTPUT_DIR = "outputs/04_flow_head"

# %% tags=["remove-cell"]
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
import logging

logging.getLogger("tensorflow").setLevel(logging.ERROR)   # no retracing chatter in the book

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view  # noqa: F401  (for Exercise 4.2)

from lstmcor.data import load_dataset
from lstmcor.evaluation import load_weights, shipped_weights
from lstmcor.exercises import check
from lstmcor.metrics import mean_dice
from lstmcor.models import build_lstmcor
from lstmcor.registration import register
from lstmcor.runtime import device_name
from lstmcor.plots import colour_wheel, field_summary, flow_to_rgb, plot_quiver
from lstmcor.transform import warp

os.makedirs(OUTPUT_DIR, exist_ok=True)
rng = np.random.default_rng(SEED)
keras.utils.set_random_seed(SEED)
START = time.time()
TIMING_RUNS = {"ci": 5, "quick": 20, "paper": 50}[PRESET]
ds = load_dataset(DATA)
H, W = ds.shape
print(f"[{PRESET}] images {H} x {W}, {TIMING_RUNS} timing runs per layer")

# %% [markdown]
# ## Where the head sits
#
# In the package the head is four layers, listed below from the model itself: `head_se` (channel
# attention over the 64 ConvLSTM channels, chapter 1), `depthwise` (Eq. 17), `flow_conv`
# (Eq. 18) and `field_se` (the SE gate on the field, which belongs to the spatial transformer of
# {doc}`05_spatial_transformer`).

# %%
model = build_lstmcor((H, W))
for name in ("from_sequence", "head_se", "depthwise", "flow_conv", "field_se"):
    layer = model.get_layer(name)
    print(f"{name:14s} {str(layer.output.shape):24s} {layer.count_params():6d} parameters")

# %% [markdown]
# ## Eq. (17): one filter per channel
#
# An ordinary 3 × 3 convolution from $C$ channels to $C_{out}$ channels gives *every* output
# channel its own 3 × 3 filter over *every* input channel, and sums over the inputs: it mixes
# space and channels in one step. A **depthwise** convolution {cite:p}`chollet2017xception` keeps
# the channels apart: channel $c$ is filtered by its own single 3 × 3 kernel and nothing is summed
# across channels, so $C$ channels come in and $C$ come out. The paper writes it as one
# convolution per channel:
#
# (eq-paper-17)=
# $$
# [W, H, C] \;\rightarrow\; \big[\mathrm{Conv}([W, H]_{c_1}), \dots, \mathrm{Conv}([W, H]_{c_n})\big] \tag{17}
# $$
#
# The channels are mixed only afterwards, by the last convolution, which has $\phi$ filters, one
# per component of the displacement ($\phi = 2$ in 2D, 3 in 3D):
#
# (eq-paper-18)=
# $$
# D = \mathrm{Conv}\big(\big[\mathrm{Conv}([W, H]_{c_1}), \dots, \mathrm{Conv}([W, H]_{c_n})\big]\big) \tag{18}
# $$
#
# The authors' reason for the split is to condense each channel of the ConvLSTM's sequence on its
# own first, and only then let the channels meet. Be careful with the name, though. In Xception and
# MobileNet a *depthwise-separable* convolution is a depthwise convolution followed by a 1 × 1
# convolution that mixes the channels. LSTM-COR's head is a depthwise 3 × 3 convolution followed by
# a **full 3 × 3 convolution**, with **nothing nonlinear between them** (no activation, no
# normalisation). Two linear maps in a row are one linear map: the two layers together compute a
# single linear 5 × 5 convolution of the SE-weighted features, whose kernel is built from the two
# smaller ones (Exercise 4.1 computes it). The only nonlinearity of the head is the SE block in
# front of it. See {doc}`../readings`.
#
# ### Parameters and multiply-adds
#
# With a $k \times k$ kernel, $C$ input channels, an image of $H \times W$ pixels and biases:
#
# | layer | weights | multiply-adds per image |
# |---|---|---|
# | depthwise, $C \to C$ | $k^2 C + C$ | $H W k^2 C$ |
# | ordinary, $C \to C_{out}$ | $k^2 C\, C_{out} + C_{out}$ | $H W k^2 C\, C_{out}$ |
#
# The depthwise layer is $C_{out}$ times cheaper than an ordinary convolution with the same
# number of outputs. The cell below checks the formulas against Keras and times the layers.

# %%
C, k = 64, 3
layers = {
    "depthwise 3x3, 64 -> 64": keras.layers.DepthwiseConv2D(k, padding="same"),
    "ordinary 3x3, 64 -> 64": keras.layers.Conv2D(C, k, padding="same"),
    "flow conv 3x3, 64 -> 2": keras.layers.Conv2D(2, k, padding="same"),
}
formula_params = {"depthwise 3x3, 64 -> 64": k * k * C + C, "ordinary 3x3, 64 -> 64": k * k * C * C + C,
                  "flow conv 3x3, 64 -> 2": k * k * C * 2 + 2}
formula_macs = {"depthwise 3x3, 64 -> 64": H * W * k * k * C, "ordinary 3x3, 64 -> 64": H * W * k * k * C * C,
                "flow conv 3x3, 64 -> 2": H * W * k * k * C * 2}
features = rng.normal(size=(1, H, W, C)).astype("float32")
rows = []
for name, layer in layers.items():
    runner = keras.Sequential([keras.Input((H, W, C)), layer])
    runner.predict_on_batch(features)                        # warm-up: builds and traces the graph
    times = []
    for _ in range(TIMING_RUNS):
        t0 = time.perf_counter()
        runner.predict_on_batch(features)
        times.append(time.perf_counter() - t0)
    assert layer.count_params() == formula_params[name]
    rows.append((name, layer.count_params(), formula_macs[name], 1e3 * float(np.median(times))))
print(f"[{PRESET}] on a [1, {H}, {W}, {C}] input, {keras.backend.backend()} backend, device {device_name()}:")
print(f"{'layer':26s} {'parameters':>10s} {'multiply-adds':>14s} {'median time':>12s}")
for name, params, macs, ms in rows:
    print(f"{name:26s} {params:10,d} {macs / 1e6:12.1f} M {ms:9.2f} ms")

# %% mystnb={"figure": {"caption": "Depthwise against ordinary convolution on the 64 ConvLSTM channels at full resolution: parameters, multiply-adds (log scales) and measured time. The flow convolution of Eq. (18) is shown for scale.", "name": "fig-04-cost"}}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.0))
names = [r[0].replace(", ", "\n") for r in rows]
colours = ["tab:green", "tab:red", "tab:blue"]
for ax, column, title in zip(axes, (1, 2, 3), ("parameters", "multiply-adds", f"median time [ms], {TIMING_RUNS} runs")):
    values = [r[column] for r in rows]
    ax.barh(names, values, color=colours)
    if column < 3:
        ax.set_xscale("log")
    ax.set_title(title)
    for y, v in enumerate(values):
        text = {1: f" {v:,.0f}", 2: f" {v / 1e6:,.1f} M", 3: f" {v:.1f}"}[column]
        ax.text(v, y, text, va="center", fontsize=8)
    ax.set_xlim(right=max(values) * (4 if column < 3 else 1.25))
    ax.invert_yaxis()
for ax in axes[1:]:
    ax.set_yticklabels([])
fig.suptitle(f"[{PRESET}] cost of one layer on a 1 x {H} x {W} x {C} input")
fig.tight_layout()
plt.show()

# %% [markdown]
# Measured times are less lopsided than the multiply-adds: a depthwise convolution does little
# arithmetic per byte of memory it reads, so on CPUs and GPUs it tends to be limited by memory
# traffic rather than arithmetic. The count of multiply-adds is a bound, not a stopwatch.
#
# :::{admonition} Exercise 4.1 (experiment): the head is one convolution
# :class: exercise
# Write `compose_head(dw_kernel, dw_bias, flow_kernel, flow_bias)` that returns the kernel
# `[5, 5, C, 2]` and the bias `[2]` of the single 5 × 5 convolution that equals the depthwise layer
# (`dw_kernel` `[3, 3, C, 1]`, `dw_bias` `[C]`) followed by the flow convolution (`flow_kernel`
# `[3, 3, C, 2]`, `flow_bias` `[2]`), both with `padding="same"`. Write out where input pixel
# $p + a + b$ reaches output pixel $p$ through tap $a$ of the depthwise kernel and tap $b$ of the
# flow kernel; the depthwise bias is filtered by the flow kernel too.
#
# Then experiment: (1) check your 5 × 5 convolution against the model's own `depthwise` and
# `flow_conv` layers on random features (compare away from the one-pixel border: can you say why
# the border differs?); (2) put a `LeakyReLU` between the two layers and compare again; (3) count
# the weights of the two layers against those of a free 5 × 5 convolution from 64 channels to 2.
# What can this head compute, and what not?
# :::

# %% tags=["exercise"] solution="ex4_1" solution_tags=["hide-input"]
def compose_head(dw_kernel, dw_bias, flow_kernel, flow_bias):
    ...  # your code: return kernel [5, 5, C, 2], bias [2]


# Stuck? Load the solution into a new cell with:  %load solutions/ex4_1.py

# %% tags=["hide-input"]
def check_ex41(compose_head):
    r = np.random.default_rng(41)
    x = r.normal(size=(2, 12, 13, 5)).astype("float32")
    dw = keras.layers.DepthwiseConv2D(3, padding="same")
    flow = keras.layers.Conv2D(2, 3, padding="same")
    dw.build(x.shape)
    flow.build(x.shape)
    dw.set_weights([r.normal(size=(3, 3, 5, 1)).astype("float32"), r.normal(size=5).astype("float32")])
    flow.set_weights([r.normal(size=(3, 3, 5, 2)).astype("float32"), r.normal(size=2).astype("float32")])
    result = compose_head(*dw.get_weights(), *flow.get_weights())
    assert result is not None, "compose_head returns nothing yet: return (kernel, bias)."
    kernel, bias = (np.asarray(v, dtype="float32") for v in result)
    assert kernel.shape == (5, 5, 5, 2) and bias.shape == (2,), (
        f"kernel {kernel.shape} and bias {bias.shape}; for 5 channels expected (5, 5, 5, 2) and (2,).")
    one = keras.layers.Conv2D(2, 5, padding="same")
    one.build(x.shape)
    one.set_weights([kernel, bias])
    want = keras.ops.convert_to_numpy(flow(dw(x)))[:, 1:-1, 1:-1]
    got = keras.ops.convert_to_numpy(one(x))[:, 1:-1, 1:-1]
    err = float(np.abs(got - want).max())
    if err > 1e-3:
        offset = (got - want).reshape(-1, 2)
        hint = ("The kernel is right but the bias is not: the depthwise bias passes through the flow kernel "
                "(sum over taps and channels)." if np.abs(offset - offset.mean(axis=0)).max() < 1e-3 else
                "Tap a of the depthwise kernel and tap b of the flow kernel land on tap a + b of the 5x5 kernel; "
                "each channel c pairs dw_kernel[..., c, 0] with flow_kernel[..., c, :].")
        raise AssertionError(f"away from the border your 5x5 convolution differs from the two layers by {err:.3g}. {hint}")
    print(f"Correct: depthwise then flow conv is one 5x5 convolution (max difference {err:.1e} inside the border).")


_ = check(check_ex41, compose_head, exercise="4.1")

# %% [markdown]
# :::{admonition} Solution: what the experiment shows
# :class: dropdown
# (1) Away from the border the two layers and the single 5 × 5 convolution agree to float
# precision. On the one-pixel border they differ: the flow convolution pads the depthwise *output*
# with zeros, while the 5 × 5 convolution would need the depthwise response just outside the image,
# which is not zero (it contains the bias and the image's edge pixels). (2) With a nonlinearity in
# between, nothing composes and the difference is no longer small (compare it with the output's
# size, both printed above). (3) The head has fewer weights than a free 5 × 5 convolution from 64 channels to 2 (the
# printed counts), so it reaches only part of the 5 × 5 kernels: for each channel, both field
# components use the same depthwise 3 × 3 filter, and each 5 × 5 kernel is a product of two 3 × 3
# ones. So the head is *linear* in the SE-weighted features: it can smooth and combine them over a
# 5 × 5 neighbourhood, but it cannot threshold, select or multiply features. Everything nonlinear
# that the field needs must already be in the 64 channels (the ConvLSTM, the U-Net) or in the SE
# gates before and after.
# :::

# %% [markdown]
# :::{admonition} Exercise 4.2: a depthwise convolution in NumPy
# :class: exercise
# Write `my_depthwise(x, kernel, bias)` for one image `x` of shape `[H, W, C]`, a Keras depthwise
# kernel of shape `[k, k, C, 1]` and a bias `[C]`, with `padding="same"` (zero padding of `k // 2`
# on each side) and *cross-correlation* (no kernel flip), returning `[H, W, C]`. The check
# compares it with `keras.layers.DepthwiseConv2D` holding the same weights.
#
# Hint: `numpy.lib.stride_tricks.sliding_window_view` gives every `k × k` window at once.
# :::

# %% tags=["exercise"] solution="ex4_2"
def my_depthwise(x, kernel, bias):
    ...  # your code: return an [H, W, C] array


# Stuck? Load the solution into a new cell with:  %load solutions/ex4_2.py

# %% tags=["hide-input"]
def check_ex42(fn):
    r = np.random.default_rng(42)
    x = r.normal(size=(1, 11, 13, 5)).astype("float32")
    layer = keras.layers.DepthwiseConv2D(3, padding="same")
    layer.build(x.shape)
    layer.set_weights([r.normal(size=(3, 3, 5, 1)).astype("float32"), r.normal(size=5).astype("float32")])
    expected = keras.ops.convert_to_numpy(layer(x))[0]
    got = fn(x[0], *layer.get_weights())
    assert got is not None, "my_depthwise returns nothing yet."
    got = np.asarray(got)
    assert got.shape == expected.shape, f"shape {got.shape}, expected {expected.shape} (padding='same' keeps H and W)."
    err = float(np.max(np.abs(got - expected)))
    if err > 1e-4:
        flipped = fn(x[0], layer.get_weights()[0][::-1, ::-1], layer.get_weights()[1])
        hint = (" Your kernel looks flipped: Keras cross-correlates." if np.max(np.abs(flipped - expected)) < 1e-4
                else " Is each channel filtered by its own kernel only, with the bias added per channel?")
        raise AssertionError(f"max difference {err:.3g} to Keras.{hint}")
    print(f"Correct: your depthwise convolution equals Keras's (max difference {err:.1e}).")


_ = check(check_ex42, my_depthwise, exercise="4.2")

# %% [markdown]
# ## Why the last convolution starts almost at zero
#
# At the start of training we want the network to predict *no* displacement, so that the moved
# image is the moving image and the loss pushes the field in a sensible direction from there.
# VoxelMorph {cite:p}`balakrishnan2019voxelmorph` gets this by drawing the flow convolution's
# weights from a normal distribution with standard deviation $10^{-5}$ and zero bias. The paper
# does not say how its last layer is initialised; the package follows VoxelMorph.
#
# What would Keras's default, Glorot-uniform, do instead? Its weights have a standard deviation of
# about $\sqrt{2 / (576 + 18)} \approx 0.06$ for this 3 × 3 × 64 → 2 kernel, so the start field is
# roughly "0.06 × the size of the features × √576". We try both initialisations on a fresh
# VoxelMorph and a fresh LSTM-COR model, same test pair.

# %%
same_brain = [(m, f) for m in ds.splits["test"] for f in ds.splits["test"]
              if m != f and ds.true_displacement(m, f) is not None]
moving_i, fixed_i = same_brain[SEED % len(same_brain)]
moving, fixed = ds.images[moving_i], ds.images[fixed_i]

from lstmcor.models import build_voxelmorph

starts = {}
for model_name, fresh in (("VoxelMorph", build_voxelmorph((H, W))), ("LSTM-COR", model)):
    features_in = keras.Model(fresh.inputs, fresh.get_layer("flow_conv").input).predict_on_batch(
        [moving[None, ..., None], fixed[None, ..., None]])
    flow_layer = fresh.get_layer("flow_conv")
    tiny = flow_layer.get_weights()
    starts[(model_name, "normal(0, 1e-5)")] = register(fresh, moving, fixed)
    flow_layer.set_weights([keras.ops.convert_to_numpy(keras.initializers.GlorotUniform(seed=SEED)(tiny[0].shape)),
                            np.zeros(2, "float32")])
    starts[(model_name, "Glorot uniform")] = register(fresh, moving, fixed)
    flow_layer.set_weights(tiny)                             # put the package's initialisation back
    print(f"{model_name}: features entering flow_conv have standard deviation {features_in.std():.2e}")
print(f"\n[{PRESET}] untrained models, test pair ({moving_i}, {fixed_i})")
print(f"{'model':11s} {'flow conv init':16s} {'mean |D| [px]':>14s} {'max |D| [px]':>13s} {'MSE(moved, moving)':>19s}")
for (model_name, init), result in starts.items():
    length = np.linalg.norm(result["flow"][0], axis=-1)
    print(f"{model_name:11s} {init:16s} {length.mean():14.2e} {length.max():13.2e} "
          f"{np.mean((result['moved'][0, ..., 0] - moving) ** 2):19.2e}")

# %% mystnb={"figure": {"caption": "Untrained VoxelMorph: the change the first warp makes to the moving image with the package's initialisation (left) and with Glorot-uniform (middle), and the length of the Glorot start field (right).", "name": "fig-04-init"}}
fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
diffs = [starts[("VoxelMorph", init)]["moved"][0, ..., 0] - moving for init in ("normal(0, 1e-5)", "Glorot uniform")]
limit = max(1e-3, float(np.abs(diffs[1]).max()))
for ax, diff, title in zip(axes[:2], diffs, ("moved - moving, normal(0, 1e-5)", "moved - moving, Glorot")):
    ax.imshow(diff, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
im = axes[2].imshow(np.linalg.norm(starts[("VoxelMorph", "Glorot uniform")]["flow"][0], axis=-1), cmap="magma")
axes[2].set_title("|D| at the start, Glorot [px]", fontsize=10)
axes[2].axis("off")
fig.colorbar(im, ax=axes[2], fraction=0.046)
fig.tight_layout()
plt.show()

# %% [markdown]
# For VoxelMorph, whose last features are LeakyReLU outputs of order 0.1 to 1, Glorot starts from
# a random field of the order of a pixel (see the table): the first moved images are already
# jittered, and the smoothness term of the loss starts from a value that has nothing to do with the
# data. The tiny normal start removes that, whatever the scale of the features. In LSTM-COR, as the
# table shows, the features reaching the head are already very small in a fresh model (tanh-bounded
# ConvLSTM outputs, scaled by two SE gates near 0.5 and a depthwise layer), so there the choice
# matters much less: both starts are practically the identity. Learning is not blocked by the tiny
# weights: the gradient of the loss with respect to the flow kernel is the features times the
# gradient at the field, which does not depend on the kernel's size.

# %% [markdown]
# ## Looking at a displacement field
#
# A field $D$ gives every pixel $p$ a vector: the moved image at $p$ is read from the moving image
# at $p + D(p)$ (the convention of the whole course, channel 0 along the rows). There are three
# useful ways to draw it, all in `lstmcor.plots`:
#
# - **arrows** (`plot_quiver`): one arrow every few pixels, from $p$ to where $p$ samples from;
#   intuitive, but only a subsample can be shown;
# - **a colour wheel** (`flow_to_rgb`, key `colour_wheel`): the hue gives the direction, the
#   brightness the length, at every pixel; dense, and smooth fields look like smooth colour;
# - **a warped grid** (`plot_grid`) and the Jacobian determinant, which come back in
#   {doc}`05_spatial_transformer` and chapter 7.
#
# Our data set knows the *true* displacement between two pseudo-subjects made from the same real
# brain (`ds.true_displacement(m, f)`), so we can look at the field a perfect registration would
# find. Pairs of different brains have no known answer (`None`).

# %%
true_flow = ds.true_displacement(moving_i, fixed_i)
norm = np.linalg.norm(true_flow, axis=-1)
print(f"test pair (moving {moving_i}, fixed {fixed_i}), brain {ds.base_of(moving_i)}: "
      f"true |D| median {np.median(norm):.1f} px, max {norm.max():.1f} px")
moved_true = warp(moving, true_flow)
moved_labels = warp(ds.labels[moving_i], true_flow, "nearest")
print(f"MSE to fixed: before {np.mean((moving - fixed) ** 2):.4f}, after the true warp {np.mean((moved_true - fixed) ** 2):.4f}; "
      f"Dice before {mean_dice(ds.labels[fixed_i], ds.labels[moving_i]):.3f}, after {mean_dice(ds.labels[fixed_i], moved_labels):.3f}")

# %% mystnb={"figure": {"caption": "The true displacement of a same-brain test pair, four ways: arrows over the fixed image, colour wheel (key in the corner), warped grid and Jacobian determinant.", "name": "fig-04-true-field"}}
field_summary(true_flow, background=fixed, suptitle=f"true displacement, test pair ({moving_i}, {fixed_i})")
plt.show()

# %% [markdown]
# And the field a model predicts for the same pair. If the package ships trained LSTM-COR weights
# we use them; otherwise the model is untrained and, thanks to the initialisation above, its field
# is tiny noise (the colour wheel scales brightness to the longest vector, so even noise of
# $10^{-4}$ pixels fills the picture: always read the scale).

# %%
try:
    trained = load_weights(shipped_weights("lstmcor"))
    TRAINED = True
    print("using the shipped trained LSTM-COR weights")
except FileNotFoundError as error:
    trained = model
    TRAINED = False
    print("no shipped weights:", str(error).split(";")[0])
    print("-> showing the UNTRAINED model's field (train one in chapter 6).")
predicted = register(trained, moving, fixed)["flow"][0]
print(f"[{PRESET}] predicted |D| max {np.linalg.norm(predicted, axis=-1).max():.2e} px")

# %% mystnb={"figure": {"caption": "The LSTM-COR model's field for the same pair (trained if weights are shipped, otherwise untrained: see the printed scale).", "name": "fig-04-predicted-field"}}
field_summary(predicted, background=fixed,
              suptitle=f"{'trained' if TRAINED else 'untrained'} LSTM-COR, max |D| = {np.linalg.norm(predicted, axis=-1).max():.1e} px")
plt.show()


# %% [markdown]
# ## Explore: scale a field and watch the warp
#
# The slider multiplies the true field by a factor $\alpha$ and shows what $\alpha D$ does to the
# moving image: at $\alpha = 0$ nothing moves, at $\alpha = 1$ the moved image should match the
# fixed one, beyond that the warp overshoots. The drop-down picks another same-brain test pair.

# %%
def scaled_view(alpha=1.0, pair=0):
    m, f = same_brain[pair]
    field = ds.true_displacement(m, f)
    moved = warp(ds.images[m], alpha * field)
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.2))
    for ax, image, title in zip(axes[:3], (ds.images[m], moved, ds.images[f]),
                                ("moving", f"moved by {alpha:.2f} D", "fixed")):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    plot_quiver(axes[3], alpha * field, step=10, background=ds.images[f])
    axes[3].set_title("arrows of $\\alpha D$", fontsize=10)
    scale = max(1.0, float(np.linalg.norm(field, axis=-1).max()))
    axes[4].imshow(flow_to_rgb(alpha * field, max_norm=scale))
    inset = axes[4].inset_axes([0.76, 0.0, 0.24, 0.24])
    inset.imshow(colour_wheel())
    inset.axis("off")
    axes[4].set_title(f"colour wheel (full = {scale:.0f} px)", fontsize=10)
    axes[4].axis("off")
    mse = np.mean((moved - ds.images[f]) ** 2)
    fig.suptitle(f"pair ({m}, {f}): MSE(moved, fixed) = {mse:.4f}")
    fig.tight_layout()
    return fig


# %% tags=["widget"]
import ipywidgets as widgets
from IPython.display import display

from lstmcor.plots import live_view

# Move a control to draw (nothing is drawn while the cell runs, so batch runs never wait on it).
display(live_view(scaled_view,
                  alpha=widgets.FloatSlider(1.0, min=0.0, max=2.0, step=0.1, description="alpha"),
                  pair=widgets.Dropdown(options=[(f"{m} -> {f}", i) for i, (m, f) in enumerate(same_brain[:20])],
                                        value=0, description="pair")))

# %% mystnb={"figure": {"caption": "Static view of the widget: the true field of the first same-brain test pair at alpha = 1.", "name": "fig-04-widget-static"}}
scaled_view(1.0, 0)
plt.show()

# %% [markdown]
# How the error to the fixed image changes with the scale, for a few pairs: the minimum sits near
# $\alpha = 1$, as it should for a correct field (it is not exactly zero: the pseudo-subjects also
# differ in contrast, noise and a little through-plane anatomy that no in-plane warp can undo).

# %% mystnb={"figure": {"caption": "MSE between the moved and the fixed image when the true field is scaled by alpha, for several same-brain test pairs.", "name": "fig-04-alpha-curve"}}
alphas = np.linspace(0, 2, {"ci": 9, "quick": 21, "paper": 41}[PRESET])
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for m, f in same_brain[: {"ci": 3, "quick": 6, "paper": 10}[PRESET]]:
    field = ds.true_displacement(m, f)
    ax.plot(alphas, [np.mean((warp(ds.images[m], a * field) - ds.images[f]) ** 2) for a in alphas],
            marker=".", label=f"{m} -> {f}")
ax.axvline(1.0, color="k", lw=0.8, ls="--")
ax.set_xlabel("alpha (scale of the true field)")
ax.set_ylabel("MSE(moved, fixed)")
ax.legend(fontsize=7)
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Putting it together
#
# With the flow head, every block of LSTM-COR has been built: the SE U-Net with its funnel
# ({doc}`02_unet_se_skips`), Eq. (6) and the ConvLSTM ({doc}`03_convlstm_channels`), the head of
# this chapter, and the field SE and spatial transformer that chapter 5 opens up. Here is the
# package's whole builder, `lstmcor.models.build_lstmcor`, as it is in the installed package:

# %% tags=["hide-input"]
import inspect

import lstmcor.models

print(inspect.getsource(lstmcor.models.build_lstmcor))

# %% [markdown]
# and the network it builds, drawn from the model itself by `lstmcor.plots.model_diagram` (every
# box is one stage, with its layer's name and output shape; an ablated or differently sized model
# draws differently, and `build_voxelmorph` draws without the stages it lacks):

# %% mystnb={"figure": {"caption": "LSTM-COR at the data's size, drawn from the model: the U-Net (encoder down, decoder up, SE skips across, the funnel to the bottleneck), then Eq. (6), the ConvLSTM, the flow head (SE, depthwise, conv to the field), the field SE and the spatial transformer. Each box gives the stage's output shape without the batch axis.", "name": "fig-04-model"}}
from lstmcor.plots import model_diagram

model_diagram(model)
plt.show()

# %% [markdown]
# :::{admonition} Exercise 4.3: assemble LSTM-COR yourself
# :class: exercise
# Write `my_lstmcor(input_shape)` that builds LSTM-COR as a functional `keras.Model`
# `[moving, fixed] -> [moved, flow]` from the package's blocks, imported in the cell below:
# `unet_features` (the SE U-Net with the funnel, `ENC_FEATURES`, `LSTMCOR_DEC_FEATURES`),
# `conv_block` (the sequence generator's last convolution to 16 channels), `ChannelsToSequence`,
# `PeepholeConvLSTM2D` (4 hidden channels, 3 × 3), `SequenceToChannels`, `SqueezeExcitation`
# (ratio 8, before the head and on the field), `FlowDepthwiseConv2D` (3 × 3, `padding="same"`),
# `flow_field` and `SpatialTransformer` (called on `[moving, flow]`). Use the default sizes of
# `build_lstmcor` and read the source above only if you are stuck.
#
# The check builds your model and `build_lstmcor` at 32 × 32, gives the reference a flow
# convolution of useful size (a fresh one predicts fields of about $10^{-5}$ pixels, too small to
# tell two networks apart), copies the weights layer by layer in order into yours, and compares
# both outputs on a random pair.
# :::

# %%
# the blocks of Exercise 4.3
from lstmcor.convlstm import ChannelsToSequence, PeepholeConvLSTM2D, SequenceToChannels  # noqa: F401
from lstmcor.flow_head import FlowDepthwiseConv2D, flow_field  # noqa: F401
from lstmcor.models import ENC_FEATURES, LSTMCOR_DEC_FEATURES, conv_block, unet_features  # noqa: F401
from lstmcor.se import SqueezeExcitation  # noqa: F401
from lstmcor.transform import SpatialTransformer  # noqa: F401


# %% tags=["exercise"] solution="ex4_3"
def my_lstmcor(input_shape=(32, 32)):
    moving = keras.Input((*input_shape, 1), name="moving")  # noqa: F841  (yours to use)
    fixed = keras.Input((*input_shape, 1), name="fixed")    # noqa: F841
    ...  # your code: the pair, the U-Net, Eq. 6, the ConvLSTM, the head, the field SE, the warp
    # return keras.Model([moving, fixed], [moved, flow])


# Stuck? Load the solution into a new cell with:  %load solutions/ex4_3.py

# %% tags=["hide-input"]
def check_ex43(my_lstmcor):
    size = (32, 32)
    reference = build_lstmcor(size)
    r = np.random.default_rng(43)
    flow_conv = reference.get_layer("flow_conv")
    flow_conv.set_weights([r.normal(0, 0.05, size=flow_conv.kernel.shape).astype("float32"), np.zeros(2, "float32")])
    mine = my_lstmcor(size)
    assert isinstance(mine, keras.Model), f"my_lstmcor returns {type(mine).__name__}, not a keras.Model."
    theirs = [layer for layer in reference.layers if layer.weights]
    ours = [layer for layer in mine.layers if layer.weights]
    for k, (a, b) in enumerate(zip(theirs, ours)):
        shapes_a, shapes_b = [tuple(w.shape) for w in a.weights], [tuple(w.shape) for w in b.weights]
        assert type(a) is type(b) and shapes_a == shapes_b, (
            f"layer {k} with weights: yours is {type(b).__name__} {shapes_b}, build_lstmcor has "
            f"{type(a).__name__} '{a.name}' {shapes_a}. Check the order of the blocks and their options.")
    assert len(ours) == len(theirs), (
        f"your model has {len(ours)} layers with weights, build_lstmcor {len(theirs)}; "
        f"missing or extra after '{theirs[min(len(ours), len(theirs)) - 1].name}'.")
    for a, b in zip(theirs, ours):
        b.set_weights(a.get_weights())
    pair = [r.random((2, *size, 1)).astype("float32") for _ in range(2)]
    want = [keras.ops.convert_to_numpy(v) for v in reference(pair)]
    got = mine(pair)
    assert isinstance(got, (list, tuple)) and len(got) == 2, "the model should return [moved, flow]."
    got = [keras.ops.convert_to_numpy(v) for v in got]
    for name, g, w in zip(("moved", "flow"), got, want):
        assert g.shape == w.shape, f"{name}: shape {g.shape}, expected {w.shape}."
        err = float(np.abs(g - w).max())
        assert np.allclose(g, w, atol=1e-4 * max(1.0, float(np.abs(w).max()))), (
            f"{name} differs from build_lstmcor's by {err:.3g} with the same weights: the layers are right "
            "but wired differently (inputs in the order [moving, fixed]? the warp on [moving, flow]?).")
    print(f"Correct: your LSTM-COR has build_lstmcor's {len(ours)} weighted layers and computes the same "
          f"moved image and field (max |flow| {np.abs(want[1]).max():.2f} px).")


_ = check(check_ex43, my_lstmcor, exercise="4.3")

# %% [markdown]
# ## Summary
#
# - The flow head is SE → depthwise 3 × 3 convolution ([Eq. (17)](#eq-paper-17)) → 3 × 3
#   convolution to $\phi = 2$ channels ([Eq. (18)](#eq-paper-18)). Nothing nonlinear sits between
#   the last two, so together they are one linear 5 × 5 convolution of the SE-weighted features
#   (not a depthwise-separable convolution, whose second layer is 1 × 1).
# - A depthwise convolution filters each channel on its own: $k^2 C$ weights instead of
#   $k^2 C\, C_{out}$, and $C_{out}$ times fewer multiply-adds, though not as much less time.
# - The flow convolution starts near zero (normal, σ = 1e-5, VoxelMorph's choice), so a fresh
#   model begins at the identity warp whatever the size of its features (in VoxelMorph, Glorot
#   would start from about a pixel of random jitter; in LSTM-COR the features are small anyway).
# - Arrows, a colour wheel and a warped grid show a field; the true field of a same-brain pair
#   shows what a good registration should find.
# - `build_lstmcor` is about sixty lines that wire the package's blocks into one functional
#   `keras.Model`; you can assemble the same network from them yourself, and
#   `lstmcor.plots.model_diagram` draws any of the package's models stage by stage.
#
# **Next:** {doc}`05_spatial_transformer` uses the field to warp the moving image, pixel by pixel
# with bilinear interpolation, and looks at the SE gate on the field.

# %% tags=["remove-cell"]
print(f"[{PRESET}] chapter 4 ran in {time.time() - START:.1f} s")
