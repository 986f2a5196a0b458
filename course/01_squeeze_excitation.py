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
# # 1. Squeeze and excitation
#
# A convolution layer produces many feature maps (channels) and, by itself, treats them all as
# equally important for every input. Squeeze and excitation (SE) {cite:p}`hu2018squeeze` adds a
# tiny side network that looks at the whole input, decides how much each channel matters *for
# this input*, and scales the channels accordingly. LSTM-COR {cite:p}`alsadi2022lstmcor` uses
# SE blocks in three places: on the U-Net skips ({doc}`02_unet_se_skips`), before the flow head
# ({doc}`04_flow_head`) and on the displacement field ({doc}`05_spatial_transformer`). This
# chapter covers [Eq. (3)](#eq-paper-3), [Eq. (4)](#eq-paper-4) and [Eq. (5)](#eq-paper-5).
#
# **Learning goals.** After this chapter you can
#
# 1. write the three steps of SE (squeeze, excite, scale) as equations and in NumPy;
# 2. show that the package's `SqueezeExcitation` layer computes exactly that, and write that layer
#    yourself as a `keras.layers.Layer` subclass (`build`, `call`, `get_config`);
# 3. read the channel gates of a real network on a brain pair;
# 4. explain what the reduction ratio $r$ trades: parameters and cost against capacity.

# %% tags=["parameters"]
PRESET = "quick"          # "ci" (seconds) | "quick" (minutes, laptop CPU) | "paper" (GPU)
DATA = "default"
SEED = 0
OUTPUT_DIR = "outputs/01_squeeze_excitation"

# %%
import os

import keras
import matplotlib.pyplot as plt
import numpy as np

import lstmcor
from lstmcor.exercises import check
from lstmcor.se import SqueezeExcitation

os.makedirs(OUTPUT_DIR, exist_ok=True)
keras.utils.set_random_seed(SEED)
rng = np.random.default_rng(SEED)
ds = lstmcor.load_dataset(DATA)

# Size of the reduction-ratio experiment per preset (training steps of the small SE students).
FIT_EPOCHS = {"ci": 60, "quick": 400, "paper": 1500}[PRESET]
RATIOS = [1, 2, 4, 8, 16, 32]
print(f"[{PRESET}] reduction-ratio experiment: {FIT_EPOCHS} epochs per r in {RATIOS}")

# %% [markdown]
# ## Three steps
#
# Take a feature map $X$ of size $H \times W \times C$: $C$ channels, each an $H \times W$ image.
#
# **Squeeze.** Summarise each channel by one number, its average over all pixels (global
# average pooling). The result $z$ has $C$ entries and describes the input as a whole:
#
# (eq-paper-3)=
# $$
# z_c = F_{sq}(X_c) = \frac{1}{H \times W} \sum_{i=1}^{H} \sum_{j=1}^{W} X_c(i, j) \tag{3}
# $$
#
# **Excite.** Map the $C$ summaries to $C$ gates between 0 and 1 with two small fully connected
# layers: the first narrows to $C/r$ units followed by a ReLU $\delta$, the second widens back to
# $C$ units followed by a sigmoid $\sigma$,
#
# (eq-paper-4)=
# $$
# s = F_{ex}(z, W) = \sigma\big(g(z, W)\big) = \sigma\big(W_2\, \delta(W_1 z)\big),
# \qquad W_1 \in \mathbb{R}^{\frac{C}{r} \times C},\; W_2 \in \mathbb{R}^{C \times \frac{C}{r}} \tag{4}
# $$
#
# The bottleneck of width $C/r$ is what makes the gates depend on *combinations* of channels
# (channel interdependencies) while keeping the block cheap. The **reduction ratio** $r$ is 8 in
# the paper.
#
# **Scale.** Multiply every channel $u_c$ (an $H \times W$ map) by its gate $s_c$:
#
# (eq-paper-5)=
# $$
# \hat{X} = F_{scale}(u_c, s_c) = s_c \cdot u_c, \qquad \hat{X} = [\hat{x}_1, \dots, \hat{x}_C],\; u_c \in \mathbb{R}^{H \times W} \tag{5}
# $$
#
# The output has the shape of the input. Nothing spatial is learned: the block only re-weights
# whole channels, and the weights change from one input to the next. Since a gate never exceeds
# 1, SE can only damp channels relative to one another; the next layer can rescale them.
#
# :::{admonition} Our reading
# :class: note
# Eq. (4) has no bias terms, so the package's layer has none by default (`use_bias=False`;
# Hu et al.'s code uses biases, and `use_bias=True` gives them). The paper writes the hidden width
# as $C/r$ without saying what happens when $C < r$: the registration field has only $C = 2$
# channels and $r = 8$. We use $\max(1, \lfloor C/r \rfloor)$. See {doc}`../readings`.
# :::
#
# ## SE in NumPy, from scratch
#
# Everything fits in a few lines. We work channels-last, `X` of shape `[B, H, W, C]`, and write
# the weights as in Eq. (4) ($W_1$ is `[C/r, C]`).

# %%
def relu(x):
    return np.maximum(x, 0.0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def se_numpy(X, W1, W2):
    """Squeeze and excitation of X [B, H, W, C] with W1 [C/r, C] and W2 [C, C/r]; returns (X_hat, s)."""
    z = X.mean(axis=(1, 2))                    # Eq. 3: [B, C]
    s = sigmoid(relu(z @ W1.T) @ W2.T)         # Eq. 4: [B, C]
    return X * s[:, None, None, :], s          # Eq. 5: every channel times its gate


C, r = 16, 8
X = rng.normal(size=(2, 20, 24, C)).astype("float32") + np.linspace(-1, 1, C)  # channels with different means
W1 = rng.normal(scale=0.5, size=(C // r, C))
W2 = rng.normal(scale=0.5, size=(C, C // r))
X_hat, s = se_numpy(X, W1, W2)
print("input", X.shape, "-> squeeze", X.mean(axis=(1, 2)).shape, "-> gates", s.shape, "-> output", X_hat.shape)
print("gates of sample 0:", np.round(s[0], 2))

# %% [markdown]
# ## The package layer, checked equal
#
# `lstmcor.se.SqueezeExcitation(ratio=8)` is a Keras layer. Its two dense layers are
# `squeeze_dense` ($W_1$, ReLU) and `excite_dense` ($W_2$, sigmoid). Keras stores a dense kernel
# as `[inputs, outputs]`, the transpose of the paper's matrices, so $W_1$ = `squeeze_dense.kernel.T`.
# We take the layer's own (random) weights, run our NumPy version with them, and compare.

# %%
layer = SqueezeExcitation(ratio=r)
out_keras = keras.ops.convert_to_numpy(layer(X))
gates_keras = keras.ops.convert_to_numpy(layer.gates(X))
W1_layer = keras.ops.convert_to_numpy(layer.squeeze_dense.kernel).T   # [C/r, C]
W2_layer = keras.ops.convert_to_numpy(layer.excite_dense.kernel).T    # [C, C/r]
out_numpy, gates_numpy = se_numpy(X, W1_layer, W2_layer)
print(f"hidden width {layer.hidden}, W1 {W1_layer.shape}, W2 {W2_layer.shape}, biases: {layer.use_bias}")
print(f"largest difference, gates: {np.abs(gates_numpy - gates_keras).max():.2e}, outputs: {np.abs(out_numpy - out_keras).max():.2e}")
assert np.allclose(out_numpy, out_keras, atol=1e-5) and np.allclose(gates_numpy, gates_keras, atol=1e-6)
print("NumPy SE == lstmcor SqueezeExcitation")

# %% [markdown]
# ## What the gates do on real feature maps
#
# Now the gates of a real network. The first layer of LSTM-COR's U-Net is a 3 × 3 convolution
# with 16 filters over the stacked moving and fixed images; its 16 feature maps form the
# highest-resolution skip connection, which passes through an SE block (`skip0_se`) before the
# decoder uses it. We feed a brain pair and look at the 16 maps before and after that block.
#
# If trained weights ship with the package we use them; otherwise the model is freshly
# initialised, and the gates then reflect random weights, not learned preferences (the text
# printed below says which).

# %%
try:
    from lstmcor.evaluation import load_weights, shipped_weights
    model = load_weights(shipped_weights("lstmcor"))
    weights_note = "shipped trained weights (data/weights/lstmcor.keras)"
except (FileNotFoundError, ValueError):
    model = lstmcor.build_lstmcor(input_shape=ds.shape)
    weights_note = "an UNTRAINED model (random weights): no shipped weights were found"
print("using", weights_note)

probe = keras.Model(model.inputs, [model.get_layer("enc0_act").output, model.get_layer("skip0_se").output])
se_block = model.get_layer("skip0_se")
test = ds.splits["test"]
m, f = int(test[0]), int(test[1])
moving, fixed = ds.images[m][None, ..., None], ds.images[f][None, ..., None]
before, after = [np.asarray(a)[0] for a in probe.predict_on_batch([moving, fixed])]
gates = keras.ops.convert_to_numpy(se_block.gates(before[None]))[0]
print(f"feature maps {before.shape}; gates min {gates.min():.3f}, max {gates.max():.3f}, mean {gates.mean():.3f}")
assert np.allclose(after, before * gates, atol=1e-5)   # Eq. 5, inside the model

# %% mystnb={"figure": {"caption": "The 16 feature maps of the first encoder convolution on a brain pair, before (top two rows) and after (bottom two rows) the skip's SE block, on one shared colour scale; each map's gate is in its title and in the bar chart.", "name": "fig-01-gates"}}
order = np.argsort(-gates)
vmax = float(np.percentile(np.abs(before), 99.5))
fig = plt.figure(figsize=(16, 8.6))
grid = fig.add_gridspec(5, 8, height_ratios=[1, 1, 1, 1, 0.9], hspace=0.35)
for k, c in enumerate(order):
    for row, maps, tag in ((k // 8, before, "before"), (2 + k // 8, after, "after")):
        ax = fig.add_subplot(grid[row, k % 8])
        ax.imshow(maps[..., c], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"ch {c}" + (f"  s={gates[c]:.2f}" if tag == "after" else ""), fontsize=8)
        ax.axis("off")
ax = fig.add_subplot(grid[4, :])
ax.bar(np.arange(16), gates[order], color=plt.cm.viridis(gates[order]))
ax.set_xticks(np.arange(16), [f"ch {c}" for c in order], fontsize=8)
ax.set_ylim(0, 1)
ax.set_ylabel("gate $s_c$")
ax.set_title("gates, largest first", fontsize=10)
fig.suptitle(f"skip0 SE on a brain pair: before (rows 1-2) and after (rows 3-4) gating; {weights_note}", fontsize=10)
plt.show()

# %% [markdown]
# Each map after gating is the same picture, only fainter or stronger: SE never moves anything
# spatially. The gates also depend on the input. Here are the gates of the same block for 12
# different test pairs; a column that changes colour is a channel whose importance the block
# re-judges from pair to pair.

# %% mystnb={"figure": {"caption": "Gates of the skip0 SE block (columns: channels) for 12 test pairs (rows).", "name": "fig-01-gates-pairs"}}
pairs = lstmcor.data.pair_indices(ds, "test", 12, seed=SEED)
mov = np.stack([ds.images[a] for a, _ in pairs])[..., None]
fix = np.stack([ds.images[b] for _, b in pairs])[..., None]
feats, _ = probe.predict_on_batch([mov, fix])
gate_table = keras.ops.convert_to_numpy(se_block.gates(feats))
fig, ax = plt.subplots(figsize=(8, 4))
im = ax.imshow(gate_table, cmap="viridis", aspect="auto")
ax.set_xlabel("channel")
ax.set_ylabel("pair")
ax.set_yticks(range(len(pairs)), [f"{a}->{b}" for a, b in pairs], fontsize=7)
fig.colorbar(im, label="gate")
ax.set_title(f"gates per pair ({'trained' if 'shipped' in weights_note else 'untrained'} model); spread per channel "
             f"{gate_table.std(axis=0).mean():.3f}", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The reduction ratio $r$
#
# The two matrices of Eq. (4) hold $C \cdot C/r$ numbers each, so an SE block costs
#
# $$
# \text{parameters} = 2\,C\,h, \qquad h = \max\big(1, \lfloor C / r \rfloor\big) \approx \frac{2C^2}{r}.
# $$
#
# Halving $r$ doubles the parameters and the arithmetic of the excitation; it also doubles the
# width $h$ of the bottleneck, i.e. how many independent "channel patterns" the block can
# recognise. With $r = 1$ every gate may depend on every channel in its own way; with $r = C$ a
# single hidden unit decides all gates, which can then only rise and fall together (up to the fixed
# sign pattern of $W_2$). The cost is small in any case compared with a convolution, whose
# parameters scale with $9 C_{in} C_{out}$: at $C = 32$ and $r = 8$ the block has 256
# parameters, a 3 × 3 convolution 9,248.
#
# The paper keeps $r = 8$ and remarks that adapting $r$ to the data helps. A small experiment
# makes that concrete: a "teacher" SE block with $r = 1$ and random weights defines input-dependent
# gates for $C = 32$ channels; "student" SE blocks with different $r$ are trained to reproduce
# its output on the same inputs. How close they can come depends on the width of their
# bottleneck, i.e. on $r$. (The widget further down lets you pick $r$; in JupyterLab, move the
# slider to draw. The figure after it shows $r = 8$.)

# %%
C_fit = 32
n_train, n_test = 512, 256
Z = rng.normal(size=(n_train + n_test, 1, 1, C_fit)).astype("float32")  # a 1x1 map: squeeze(Z) = Z
teacher = SqueezeExcitation(ratio=1)
teacher.build(Z.shape)
teacher.squeeze_dense.kernel.assign(rng.normal(scale=0.5, size=(C_fit, C_fit)).astype("float32"))
teacher.excite_dense.kernel.assign(rng.normal(scale=0.3, size=(C_fit, C_fit)).astype("float32"))
Y = keras.ops.convert_to_numpy(teacher(Z))
# FIT_EPOCHS passes over the training examples, each pass in a new order, handed to one call of
# fit: a Keras epoch costs more bookkeeping than these tiny steps (4 times faster than epochs=).
order = np.concatenate([np.random.default_rng([SEED, e]).permutation(n_train) for e in range(FIT_EPOCHS)])
fits = {}
for ratio in RATIOS:
    keras.utils.set_random_seed(SEED)
    inp = keras.Input(Z.shape[1:])
    student = keras.Model(inp, SqueezeExcitation(ratio=ratio, name="se")(inp))
    student.compile(keras.optimizers.Adam(1e-2), "mse")
    student.fit(Z[order], Y[order], batch_size=128, epochs=1, shuffle=False, verbose=0)
    se = student.get_layer("se")
    fits[ratio] = {"params": student.count_params(), "hidden": se.hidden,
                   "test_mse": float(student.evaluate(Z[n_train:], Y[n_train:], verbose=0)),
                   "gates": keras.ops.convert_to_numpy(se.gates(Z[n_train:n_train + 4]))}
teacher_gates = keras.ops.convert_to_numpy(teacher.gates(Z[n_train:n_train + 4]))
baseline = float(np.mean((Y[n_train:] - Y[:n_train].mean(axis=0)) ** 2))
print(f"[{PRESET}] C = {C_fit}; error of a constant guess: {baseline:.4f}")
print("   r   hidden   parameters   test error")
for ratio, fit in fits.items():
    print(f"  {ratio:2d}   {fit['hidden']:6d}   {fit['params']:10d}   {fit['test_mse']:.4f}")


# %%
def show_ratio(r=8):
    """Parameters against r, the students' error, and the gates of the chosen r next to the teacher's."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), gridspec_kw={"width_ratios": [1, 1, 1.6]})
    rs = np.array([1, 2, 4, 8, 16, 32, 64])
    for channels, style in ((16, ":"), (32, "-"), (64, "--")):
        axes[0].plot(rs, [2 * channels * max(1, channels // q) for q in rs], style, marker="o", label=f"C = {channels}")
    axes[0].axvline(r, color="grey", lw=0.8)
    axes[0].set(xscale="log", yscale="log", xlabel="reduction ratio r", ylabel="SE parameters", title="cost: 2 C max(1, C//r)")
    axes[0].set_xticks(rs, rs)
    axes[0].legend(fontsize=8)
    axes[1].plot(RATIOS, [fits[q]["test_mse"] for q in RATIOS], "o-", color="tab:red")
    axes[1].axhline(baseline, ls=":", color="grey", label="constant guess")
    axes[1].plot([r], [fits[r]["test_mse"]], "o", ms=12, mfc="none", color="black")
    axes[1].set(xscale="log", xlabel="reduction ratio r", ylabel="error on new inputs",
                title=f"capacity ({FIT_EPOCHS} epochs, C = {C_fit})")
    axes[1].set_xticks(RATIOS, RATIOS)
    axes[1].legend(fontsize=8)
    x = np.arange(C_fit)
    for k, shift in enumerate((0.0, 1.2)):
        axes[2].vlines(x, teacher_gates[k] + shift, fits[r]["gates"][k] + shift, color="grey", lw=0.8)
        axes[2].plot(x, teacher_gates[k] + shift, "o", color="black", ms=4, label="teacher" if k == 0 else None)
        axes[2].plot(x, fits[r]["gates"][k] + shift, "x", color="tab:red", ms=5, label=f"student r = {r}" if k == 0 else None)
        axes[2].text(-1, shift + 0.5, f"input {k + 1}", rotation=90, va="center", ha="right", fontsize=8)
    axes[2].set(xlabel="channel", yticks=[0, 1, 1.2, 2.2], yticklabels=["0", "1", "0", "1"], xlim=(-2.5, C_fit),
                title=f"gates for two new inputs, r = {r} (hidden width {fits[r]['hidden']})")
    axes[2].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    plt.show()


# %% tags=["widget"]
import ipywidgets as widgets
from IPython.display import display


from lstmcor.plots import live_view  # controls + a view that redraws on change

display(live_view(show_ratio, r=widgets.SelectionSlider(options=RATIOS, value=8, description="r")))

# %% mystnb={"figure": {"caption": "The reduction ratio r. Left: parameters of an SE block against r for three channel counts. Middle: how well SE students with different r reproduce the gates of a wide teacher. Right: teacher and student gates (r = 8) for two inputs.", "name": "fig-01-ratio"}}
show_ratio(8)

# %% [markdown]
# Small $r$ (wide bottleneck) copies the teacher closely; large $r$ can only produce coarse
# gate patterns. Real data are not a random teacher: if a few channel patterns suffice, a large
# $r$ is as good and cheaper; if the data need finely different weightings of many channels, a
# smaller $r$ pays off. That is the sense of the paper's remark that $r$ is worth tuning per data
# set (its experiments keep $r = 8$). In LSTM-COR the blocks are so small that $r$ barely changes
# the model's size, and the package's `build_lstmcor(se_ratio=...)` lets you try other values.
#
# ## Exercises
#
# :::{admonition} Exercise 1.1: SE in NumPy
# :class: exercise
# Without looking at `se_numpy` above, write `my_se(X, W1, W2)` that returns $\hat X$ of
# Eq. (5) for `X` of shape `[B, H, W, C]`, `W1` of shape `[C/r, C]` and `W2` of shape
# `[C, C/r]` (the paper's orientation). The check runs it with the weights of a fresh
# `SqueezeExcitation(ratio=4)` layer on 32 channels and compares with the layer.
# :::

# %% tags=["exercise"] solution="ex1_1"
def my_se(X, W1, W2):
    ...  # your code: squeeze (Eq. 3), excite (Eq. 4), scale (Eq. 5)


# Stuck? Load the solution into a new cell with:  %load solutions/ex1_1.py

# %%
def check_ex11(my_se):
    X = np.random.default_rng(1).normal(size=(3, 8, 10, 32)).astype("float32") + np.linspace(-1, 1, 32)
    layer = SqueezeExcitation(ratio=4)
    want = keras.ops.convert_to_numpy(layer(X))
    W1 = keras.ops.convert_to_numpy(layer.squeeze_dense.kernel).T
    W2 = keras.ops.convert_to_numpy(layer.excite_dense.kernel).T
    got = my_se(X, W1, W2)
    assert got is not None, "my_se returns None: fill it in."
    got = np.asarray(got)
    assert got.shape == X.shape, f"output shape {got.shape}, expected the input's shape {X.shape}."
    if not np.allclose(got, want, atol=1e-5):
        hint = "Average over H and W only (axes 1 and 2), ReLU after W1, sigmoid after W2, then multiply each channel."
        raise AssertionError(f"largest difference from the layer: {np.abs(got - want).max():.3g}. {hint}")
    print("Correct: your SE equals lstmcor's SqueezeExcitation (largest difference "
          f"{np.abs(got - want).max():.1e}).")


_ = check(check_ex11, my_se, exercise="1.1")

# %% [markdown]
# :::{admonition} Exercise 1.2: SE as a Keras layer
# :class: exercise
# Now write the block the way the package does: a subclass of `keras.layers.Layer` named `MySE`.
#
# * `__init__(self, ratio=8, **kwargs)` keeps the ratio (pass `**kwargs` on to `super().__init__`);
# * `build(self, input_shape)` creates **two** weights with `self.add_weight`: first `w1` of shape
#   `[C, hidden]`, then `w2` of shape `[hidden, C]` (the Keras orientation, $W_1^\top$ and
#   $W_2^\top$), with `hidden = max(1, C // ratio)`;
# * `call(self, x)` computes Eq. (3)–(5) with `keras.ops` only (`keras.ops.mean`, `keras.ops.matmul`,
#   `keras.ops.relu`, `keras.ops.sigmoid`, `keras.ops.reshape`), so the layer also works inside a
#   `keras.Model` on symbolic inputs, on every backend;
# * `get_config(self)` returns the parent's config plus `ratio`, so that
#   `MySE.from_config(layer.get_config())` rebuilds the layer (this is how Keras saves models).
#
# The check copies the weights of a `SqueezeExcitation(ratio=4)` into your layer, compares the
# outputs on random input with the package's layer, runs it inside a functional model, and
# rebuilds it from its config.
# :::

# %% tags=["exercise"] solution="ex1_2"
class MySE(keras.layers.Layer):
    def __init__(self, ratio=8, **kwargs):
        super().__init__(**kwargs)
        self.ratio = int(ratio)

    def build(self, input_shape):
        ...  # your code: self.w1 = self.add_weight(...), then self.w2 = self.add_weight(...)

    def call(self, x):
        ...  # your code: squeeze, excite, scale with keras.ops

    def get_config(self):
        ...  # your code: the parent's config plus the ratio


# Stuck? Load the solution into a new cell with:  %load solutions/ex1_2.py

# %%
def check_ex12(layer_class):
    X = np.random.default_rng(12).normal(size=(3, 8, 10, 32)).astype("float32") + np.linspace(-1, 1, 32)
    reference = SqueezeExcitation(ratio=4)
    want = keras.ops.convert_to_numpy(reference(X))
    kernels = [keras.ops.convert_to_numpy(reference.squeeze_dense.kernel),
               keras.ops.convert_to_numpy(reference.excite_dense.kernel)]
    mine = layer_class(ratio=4)
    mine.build(X.shape)
    shapes = [tuple(w.shape) for w in mine.weights]
    assert shapes == [(32, 8), (8, 32)], (
        f"on 32 channels with ratio 4 your layer's weights have shapes {shapes}; build() should create w1 "
        "[C, hidden] and then w2 [hidden, C], with hidden = max(1, C // ratio), and nothing else.")
    mine.set_weights(kernels)
    got = mine(X)
    assert got is not None, "call() returns None: return the scaled input."
    got = keras.ops.convert_to_numpy(got)
    assert got.shape == X.shape, f"output shape {got.shape}, expected the input's shape {X.shape}."
    if not np.allclose(got, want, atol=1e-5):
        raise AssertionError(f"largest difference from SqueezeExcitation: {np.abs(got - want).max():.3g}. Mean over "
                             "axes 1 and 2, ReLU after w1, sigmoid after w2, then scale every channel by its gate.")
    inp = keras.Input((8, 10, 32))
    try:
        keras.Model(inp, layer_class(ratio=4)(inp))
    except Exception as exc:
        raise AssertionError(f"your layer fails on a symbolic keras.Input ({type(exc).__name__}: {exc}); "
                             "use keras.ops, not NumPy, inside call().") from exc
    config = mine.get_config()
    assert isinstance(config, dict) and config.get("ratio") == 4, (
        f"get_config() gives {config!r}; it should return the parent's config with 'ratio': 4 added.")
    twin = layer_class.from_config(config)
    twin.build(X.shape)
    twin.set_weights(kernels)
    assert twin.ratio == 4 and twin.name == mine.name and np.allclose(keras.ops.convert_to_numpy(twin(X)), want,
                                                                       atol=1e-5), (
        "MySE.from_config(layer.get_config()) does not rebuild the same layer: keep the parent's config "
        "(name, dtype, ...) and add the ratio.")
    print(f"Correct: your Keras layer equals SqueezeExcitation (largest difference {np.abs(got - want).max():.1e}), "
          "works in a functional model and survives get_config/from_config.")


_ = check(check_ex12, MySE, exercise="1.2")

# %% [markdown]
# ## Summary
#
# * SE squeezes each channel to its mean ([Eq. (3)](#eq-paper-3)), turns the $C$ means into $C$
#   gates through a narrow ReLU layer and a sigmoid layer ([Eq. (4)](#eq-paper-4)), and multiplies
#   each channel by its gate ([Eq. (5)](#eq-paper-5)). It re-weights whole channels, differently
#   for every input, and never changes anything spatially.
# * Our NumPy version and `lstmcor.se.SqueezeExcitation` agree to float precision when given the
#   same weights (Keras stores $W_1^\top$ and $W_2^\top$).
# * As a Keras layer, SE is two weights made in `build` with `add_weight`, a `call` written in
#   `keras.ops` (so it runs on symbolic inputs and on every backend), and a `get_config` that lets
#   Keras rebuild it; every layer of the package follows that pattern.
# * The reduction ratio $r$ sets the bottleneck width $\max(1, C // r)$ and the cost
#   $2C\max(1, C//r)$ parameters; smaller $r$ buys capacity to express finer channel weightings.
#
# **Next:** where LSTM-COR puts these blocks in its U-Net, and the funnel connection that links
# the top of the U-Net to its bottom: {doc}`02_unet_se_skips`.
