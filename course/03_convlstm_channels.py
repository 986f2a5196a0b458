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
# # 3. Channels as a sequence: the ConvLSTM
#
# The sequence generator of {doc}`02_unet_se_skips` ends in `n = 16` feature maps. LSTM-COR
# {cite:p}`alsadi2022lstmcor` does something unusual with them: it reads the 16 channels as 16
# *time steps* of a one-channel image sequence and walks through them with a convolutional LSTM
# {cite:p}`shi2015convlstm`. This chapter builds that piece in three stages, each checked against
# the one before and against the `lstmcor` package: the classical LSTM on vectors
# ([Eq. (7)–(11)](#eq-paper-7)), the convolutional LSTM on images ([Eq. (12)–(16)](#eq-paper-12)),
# and the reshaping that turns channels into steps ([Eq. (6)](#eq-paper-6)).
#
# **Learning goals.** After this chapter you can
#
# - write one LSTM step with peepholes in NumPy and say what each gate decides, then one ConvLSTM
#   step in `keras.ops`, the way a Keras layer is written;
# - replace the matrix products by convolutions and get a ConvLSTM, and explain why the states then
#   stay images;
# - check the package's `PeepholeConvLSTM2D` against `keras.layers.ConvLSTM2D` (peepholes off) and
#   against your own NumPy loop (peepholes on);
# - follow the shapes `[B, H, W, n] → [B, n, H, W, 1] → [B, n, H, W, F] → [B, H, W, n·F]`;
# - look at the gates of the real model along the channel sequence, and say honestly what
#   "channel order" means for a network that learns it.

# %% tags=["parameters"]
PRESET = "quick"          # "ci" (seconds) | "quick" (minutes, laptop CPU) | "paper" (GPU)
DATA = "default"
SEED = 0
OUTPUT_DIR = "outputs/03_convlstm_channels"

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
from numpy.lib.stride_tricks import sliding_window_view

from lstmcor.convlstm import ChannelsToSequence, PeepholeConvLSTM2D, SequenceToChannels
from lstmcor.data import load_dataset, pair_indices
from lstmcor.evaluation import load_weights, shipped_weights
from lstmcor.exercises import check
from lstmcor.models import build_lstmcor

os.makedirs(OUTPUT_DIR, exist_ok=True)
rng = np.random.default_rng(SEED)
keras.utils.set_random_seed(SEED)
START = time.time()
# Size of the toy problems used for the checks (the brain model runs at its own size).
TOY = {"ci": dict(h=12, w=14, steps=5), "quick": dict(h=24, w=28, steps=8),
       "paper": dict(h=40, w=48, steps=16)}[PRESET]
print(f"[{PRESET}] keras {keras.__version__} on {keras.backend.backend()}, toy size {TOY}")

# %% [markdown]
# ## Why read channels as a sequence?
#
# A convolution layer mixes all its input channels at once: every output channel is a weighted sum
# over all input channels, and the layer has no notion of "first" or "next" channel. The LSTM-COR
# authors want the network to model *relations between channels* more explicitly, and they borrow
# the tool that is built for relations between the items of a sequence: a recurrent network. The
# LSTM visits channel 1, keeps a memory of what it saw, visits channel 2 in the light of that
# memory, and so on. Because the memory is itself an image (a ConvLSTM keeps spatial state), what
# it carries from channel to channel is *where* things were seen, not just *that* they were seen.
#
# :::{admonition} An honest caveat: the order of the channels is learned, not given
# :class: warning
# Time steps of a video have a natural order. The 16 channels of a convolution layer do not: if
# you permute that layer's filters, the U-Net computes the same information in another order.
# The recurrence therefore does not *discover* an order that was there before; the sequence
# generator and the ConvLSTM are trained together, so training settles on whatever order suits the
# recurrence. Read "channels as a sequence" as "a recurrent way to fuse channels", not as a claim
# about a meaningful channel order. We show below that the LSTM's output does depend on the order.
# :::
#
# ## Eq. (6): from channels to steps
#
# The paper writes the reshaping as a map from one `n`-channel image to `n` one-channel images:
#
# (eq-paper-6)=
# $$
# [x, y, n] \;\rightarrow\; n \times [x, y, 1] \tag{6}
# $$
#
# In Keras's channels-last layout with a batch axis, that is `[B, H, W, n] → [B, n, H, W, 1]`,
# the input layout of a ConvLSTM (`[batch, time, height, width, channels]`). The package's
# `ChannelsToSequence` does it with one transpose; `SequenceToChannels` folds the ConvLSTM's
# output `[B, n, H, W, F]` back into `n·F` channels for the flow head.

# %%
x = rng.random((2, 6, 8, 5)).astype("float32")           # B=2, H=6, W=8, n=5 channels
seq = keras.ops.convert_to_numpy(ChannelsToSequence()(x))
print("channels  ", x.shape, "-> sequence", seq.shape)
print("step 3 of the sequence is channel 3 of the input:", np.array_equal(seq[:, 3, :, :, 0], x[..., 3]))
states = rng.random((2, 5, 6, 8, 4)).astype("float32")    # what a ConvLSTM with F=4 returns
folded = keras.ops.convert_to_numpy(SequenceToChannels()(states))
print("states    ", states.shape, "-> channels", folded.shape)
t, f = 3, 2
print(f"channel t*F+f = {t * 4 + f} holds feature f={f} of step t={t}:",
      np.array_equal(folded[..., t * 4 + f], states[:, t, :, :, f]))

# %% [markdown]
# :::{admonition} Exercise 3.1: shapes after Eq. (6)
# :class: exercise
# The default LSTM-COR model works on images of `H = 160` by `W = 192` pixels, and its sequence
# generator ends in `n = 16` channels; the ConvLSTM has `F = 4` hidden channels. For a batch of
# `B = 8` pairs, write down (a) the shape after `ChannelsToSequence` and (b) the shape that
# `SequenceToChannels` hands to the flow head. Use tuples of integers.
# :::

# %% tags=["exercise"] solution="ex3_1"
shape_after_eq6 = None         # (B, ..., ...)
shape_to_flow_head = None
# Stuck? Load the solution into a new cell with:  %load solutions/ex3_1.py

# %% tags=["hide-input"]
def check_ex31(a, b):
    expected_a = ChannelsToSequence().compute_output_shape((8, 160, 192, 16))
    expected_b = SequenceToChannels().compute_output_shape((8, 16, 160, 192, 4))
    assert a is not None and b is not None, "Fill in both shapes as tuples of integers."
    assert tuple(a) == tuple(expected_a), (
        f"(a) {tuple(a)} is not right: Eq. (6) moves the channel axis next to the batch axis and "
        "leaves a single channel per step.")
    assert tuple(b) == tuple(expected_b), (
        f"(b) {tuple(b)} is not right: every step returns F hidden channels, and all steps are "
        "stacked back along the channel axis.")
    print(f"Correct: {tuple(a)} after Eq. (6), {tuple(b)} into the flow head.")


_ = check(check_ex31, shape_after_eq6, shape_to_flow_head, exercise="3.1")

# %% [markdown]
# ## The classical LSTM, Eq. (7)–(11)
#
# An LSTM {cite:p}`hochreiter1997lstm` carries two vectors from step to step: a *cell state* $c$
# (the long-term memory) and a *hidden state* $h$ (what it shows the outside world). At step $t$ it
# reads the input $x_t$ and the previous $h_{t-1}$, and three sigmoid *gates*, numbers between 0
# and 1 for every hidden unit, decide what happens:
#
# - the **input gate** $i_t$: how much of the new candidate content enters the memory;
# - the **forget gate** $f_t$: how much of the old memory is kept;
# - the **output gate** $o_t$: how much of the (squashed) memory is shown as $h_t$.
#
# The version in the paper also lets the gates look at the memory itself, the *peephole* terms
# $W_{c\cdot} \circ c$ {cite:p}`gers2002peephole`: the input and forget gates see the old memory
# $c_{t-1}$, the output gate sees the new one $c_t$. With $\circ$ the element-wise product and
# $\sigma$ the logistic sigmoid:
#
# (eq-paper-7)=
# $$
# i_t = \sigma(W_{xi} x_t + W_{hi} h_{t-1} + W_{ci} \circ c_{t-1} + b_i) \tag{7}
# $$
#
# (eq-paper-8)=
# $$
# f_t = \sigma(W_{xf} x_t + W_{hf} h_{t-1} + W_{cf} \circ c_{t-1} + b_f) \tag{8}
# $$
#
# (eq-paper-9)=
# $$
# c_t = f_t \circ c_{t-1} + i_t \circ \tanh(W_{xc} x_t + W_{hc} h_{t-1} + b_c) \tag{9}
# $$
#
# (eq-paper-10)=
# $$
# o_t = \sigma(W_{xo} x_t + W_{ho} h_{t-1} + W_{co} \circ c_t + b_o) \tag{10}
# $$
#
# (eq-paper-11)=
# $$
# h_t = o_t \circ \tanh(c_t) \tag{11}
# $$
#
# Because the peephole weight multiplies element-wise, $W_{ci}$, $W_{cf}$, $W_{co}$ are vectors
# (one number per hidden unit), while the $W_{x\cdot}$ and $W_{h\cdot}$ are full matrices. Keras
# stores the four input matrices side by side in one `kernel` of shape `[C, 4F]` in the order
# **i, f, c, o**, the four recurrent ones in `recurrent_kernel` `[F, 4F]`, and the biases in one
# vector `[4F]`. We use the same layout, so weights can be copied between implementations.

# %%
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_step_reference(x, h, c, kernel, recurrent_kernel, bias, w_ci, w_cf, w_co):
    """One step of Eq. (7)-(11) on vectors. kernel [C, 4F], recurrent_kernel [F, 4F], bias [4F]."""
    z = x @ kernel + h @ recurrent_kernel + bias
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
    i = sigmoid(z_i + w_ci * c)             # Eq. (7)
    f = sigmoid(z_f + w_cf * c)             # Eq. (8)
    c = f * c + i * np.tanh(z_c)            # Eq. (9)
    o = sigmoid(z_o + w_co * c)             # Eq. (10), peeks at the NEW cell state
    h = o * np.tanh(c)                      # Eq. (11)
    return h, c


# A toy run: one hidden unit asked to remember a pulse. The input opens the input gate and writes
# into the memory; afterwards only the forget gate decides how long the trace survives.
pulse = np.zeros((12, 1))
pulse[2] = 3.0
no_peepholes = dict(w_ci=np.zeros(1), w_cf=np.zeros(1), w_co=np.zeros(1))
traces = {}
for forget_bias in (3.0, 0.0, -3.0):
    toy = dict(kernel=np.array([[2.0, 0.0, 1.0, 0.0]]),          # i, f, c, o weights of the input
               recurrent_kernel=np.zeros((1, 4)),                # no recurrence, to keep it readable
               bias=np.array([-1.0, forget_bias, 0.0, 1.0]), **no_peepholes)
    h, c = np.zeros(1), np.zeros(1)
    trace = []
    for t in range(len(pulse)):
        h, c = lstm_step_reference(pulse[t], h, c, **toy)
        trace.append((c[0], h[0]))
    traces[forget_bias] = np.array(trace)

# %% mystnb={"figure": {"caption": "One LSTM unit fed a single pulse at step 2. The pulse opens the input gate and is written into the cell state; after that the forget gate alone decides how long the memory lasts (its bias sets f = \u03c3(b_f)).", "name": "fig-03-pulse"}}
fig, axes = plt.subplots(1, 3, figsize=(11, 2.8), sharex=True)
axes[0].stem(pulse[:, 0])
axes[0].set_title("input $x_t$")
for forget_bias, trace in traces.items():
    label = f"$b_f$ = {forget_bias:+.0f}  (f = {sigmoid(forget_bias):.2f})"
    axes[1].plot(trace[:, 0], marker="o", label=label)
    axes[2].plot(trace[:, 1], marker="o", label=label)
axes[1].set_title("cell state $c_t$ (the memory)")
axes[2].set_title("hidden state $h_t$ (what is shown)")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.set_xlabel("step t")
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# :::{admonition} Exercise 3.2: one LSTM step in NumPy
# :class: exercise
# Write `my_lstm_step(x, h, c, kernel, recurrent_kernel, bias, w_ci, w_cf, w_co)` returning
# `(h_new, c_new)` for **one** step of Eq. (7)–(11), with the Keras layout described above (gate
# order i, f, c, o). Watch which cell state each peephole looks at. The check runs the package's
# convolutional cell on a *1 × 1 image* with a *1 × 1 kernel*: there a convolution is just a
# matrix product, so a ConvLSTM is exactly the vector LSTM of the paper.
# :::

# %% tags=["exercise"] solution="ex3_2"
def my_lstm_step(x, h, c, kernel, recurrent_kernel, bias, w_ci, w_cf, w_co):
    ...  # your code: return h_new, c_new


# Stuck? Load the solution into a new cell with:  %load solutions/ex3_2.py

# %% tags=["hide-input"]
def check_ex32(step):
    """Two steps of the package cell on a 1x1 image with a 1x1 kernel, against two calls of `step`."""
    r = np.random.default_rng(32)
    C, F = 3, 2
    cell = PeepholeConvLSTM2D(F, kernel_size=1)
    xs = r.normal(size=(1, 2, 1, 1, C)).astype("float32")
    cell.build(xs.shape)
    w = dict(kernel=r.normal(size=(C, 4 * F)), recurrent_kernel=r.normal(size=(F, 4 * F)),
             bias=r.normal(size=4 * F), w_ci=r.normal(size=F), w_cf=r.normal(size=F), w_co=r.normal(size=F))
    cell.set_weights([w["kernel"][None, None], w["recurrent_kernel"][None, None], w["bias"],
                      w["w_ci"], w["w_cf"], w["w_co"]])
    expected = keras.ops.convert_to_numpy(cell(xs))[0, :, 0, 0, :]
    h, c = np.zeros(F), np.zeros(F)
    got = []
    for t in range(2):
        result = step(xs[0, t, 0, 0].astype("float64"), h, c, **w)
        assert result is not None, "my_lstm_step returns nothing yet: return (h_new, c_new)."
        h, c = result
        got.append(np.asarray(h))
    err = float(np.max(np.abs(np.array(got) - expected)))
    if err > 1e-4:
        wrong_o = []
        h, c = np.zeros(F), np.zeros(F)
        for t in range(2):  # a common slip: the output gate peeking at the OLD cell state
            z = xs[0, t, 0, 0] @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
            zi, zf, zc, zo = np.split(z, 4)
            cn = sigmoid(zf + w["w_cf"] * c) * c + sigmoid(zi + w["w_ci"] * c) * np.tanh(zc)
            h, c = sigmoid(zo + w["w_co"] * c) * np.tanh(cn), cn
            wrong_o.append(h)
        hint = (" Your output gate looks at c_{t-1}; Eq. (10) uses the new c_t."
                if np.max(np.abs(np.array(wrong_o) - np.array(got))) < 1e-6 else
                " Check the gate order (i, f, c, o) and which nonlinearity each part uses.")
        raise AssertionError(f"h differs from the package cell by {err:.3g}.{hint}")
    print(f"Correct: your step matches PeepholeConvLSTM2D with a 1x1 kernel (max difference {err:.1e}).")


_ = check(check_ex32, my_lstm_step, exercise="3.2")

# %% [markdown]
# ## From vectors to images: the ConvLSTM, Eq. (12)–(16)
#
# The feature maps are images, and flattening a 160 × 192 image into a vector would throw away
# its geometry and need huge weight matrices. Shi et al. {cite:p}`shi2015convlstm` keep the
# structure: input $\mathcal{X}_t$, hidden state $\mathcal{H}_t$ and cell state $\mathcal{C}_t$
# are all images with channels, and every matrix product becomes a convolution ($*$). A pixel's
# gates then depend on its neighbourhood in the input and in the previous hidden state, so memory
# can travel a little in space at each step. Gates are computed per pixel and per hidden channel.
#
# (eq-paper-12)=
# $$
# i_t = \sigma(W_{xi} * \mathcal{X}_t + W_{hi} * \mathcal{H}_{t-1} + W_{ci} \circ \mathcal{C}_{t-1} + b_i) \tag{12}
# $$
#
# (eq-paper-13)=
# $$
# f_t = \sigma(W_{xf} * \mathcal{X}_t + W_{hf} * \mathcal{H}_{t-1} + W_{cf} \circ \mathcal{C}_{t-1} + b_f) \tag{13}
# $$
#
# (eq-paper-14)=
# $$
# \mathcal{C}_t = f_t \circ \mathcal{C}_{t-1} + i_t \circ \tanh(W_{xc} * \mathcal{X}_t + W_{hc} * \mathcal{H}_{t-1} + b_c) \tag{14}
# $$
#
# (eq-paper-15)=
# $$
# o_t = \sigma(W_{xo} * \mathcal{X}_t + W_{ho} * \mathcal{H}_{t-1} + W_{co} \circ \mathcal{C}_t + b_o) \tag{15}
# $$
#
# (eq-paper-16)=
# $$
# \mathcal{H}_t = o_t \circ \tanh(\mathcal{C}_t) \tag{16}
# $$
#
# (The paper writes the left-hand side of Eq. (14) in lower case; it is the image-valued cell
# state $\mathcal{C}_t$.) Deep-learning "convolution" is really *cross-correlation*: the kernel is
# not flipped. With `padding="same"` and an odd kernel, Keras pads with zeros so that the output
# keeps the image size. Here is that operation in NumPy, built from sliding windows, followed by
# the whole ConvLSTM loop. The loop also returns the gates, which we look at later.

# %%
def conv_same(x, kernel):
    """Keras-style 'same' cross-correlation. x [H, W, C], kernel [k, k, C, O] -> [H, W, O]."""
    k = kernel.shape[0]
    p = k // 2
    padded = np.pad(x, ((p, p), (p, p), (0, 0)))
    windows = sliding_window_view(padded, (k, k), axis=(0, 1))       # [H, W, C, k, k]
    return np.einsum("hwcij,ijco->hwo", windows, kernel)


def numpy_convlstm(sequence, kernel, recurrent_kernel, bias, w_ci=None, w_cf=None, w_co=None):
    """Eq. (12)-(16) for one sample. sequence [T, H, W, C] -> dict of [T, H, W, F] arrays."""
    F = recurrent_kernel.shape[-1] // 4
    T, H, W, _ = sequence.shape
    zeros = np.zeros(F)
    w_ci, w_cf, w_co = (zeros if w is None else w for w in (w_ci, w_cf, w_co))
    h, c = np.zeros((H, W, F)), np.zeros((H, W, F))
    out = {name: [] for name in ("h", "c", "i", "f", "o")}
    for t in range(T):
        z = conv_same(sequence[t], kernel) + conv_same(h, recurrent_kernel) + bias
        z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
        i = sigmoid(z_i + w_ci * c)              # Eq. (12)
        f = sigmoid(z_f + w_cf * c)              # Eq. (13)
        c = f * c + i * np.tanh(z_c)             # Eq. (14)
        o = sigmoid(z_o + w_co * c)              # Eq. (15)
        h = o * np.tanh(c)                       # Eq. (16)
        for name, value in zip(("h", "c", "i", "f", "o"), (h, c, i, f, o)):
            out[name].append(value)
    return {name: np.array(values) for name, values in out.items()}


# The NumPy convolution against Keras's Conv2D (bias off).
xa = rng.normal(size=(1, TOY["h"], TOY["w"], 3)).astype("float32")
conv = keras.layers.Conv2D(5, 3, padding="same", use_bias=False)
reference = keras.ops.convert_to_numpy(conv(xa))[0]
print(f"[{PRESET}] conv_same vs keras Conv2D: max |difference| = "
      f"{np.max(np.abs(conv_same(xa[0], conv.get_weights()[0]) - reference)):.2e}")

# %% [markdown]
# ### Check 1: peepholes off, the package cell equals Keras's `ConvLSTM2D`
#
# Keras ships a ConvLSTM without peepholes. We build it and the package cell on the same input,
# copy Keras's `kernel`, `recurrent_kernel` and `bias` into the package cell and compare all time
# steps. Both layers start the forget-gate bias at 1 (Keras's `unit_forget_bias=True`, a common
# trick that makes a fresh LSTM remember by default); since we copy the bias, that choice does not
# matter for the check, but it is worth knowing when you read a freshly built model's weights.

# %%
T, Hh, Ww, C, F = TOY["steps"], TOY["h"], TOY["w"], 2, 3
sequence = rng.normal(size=(1, T, Hh, Ww, C)).astype("float32")
keras_cell = keras.layers.ConvLSTM2D(F, 3, padding="same", return_sequences=True)
expected = keras.ops.convert_to_numpy(keras_cell(sequence))
kernel, recurrent_kernel, bias = keras_cell.get_weights()
print("keras weights:", [w.shape for w in keras_cell.get_weights()],
      "| forget-gate bias starts at", bias[F:2 * F])

ours = PeepholeConvLSTM2D(F, 3)
ours.build(sequence.shape)
ours.set_weights([kernel, recurrent_kernel, bias, np.zeros(F), np.zeros(F), np.zeros(F)])
got = keras.ops.convert_to_numpy(ours(sequence))
numpy_h = numpy_convlstm(sequence[0].astype("float64"), kernel, recurrent_kernel, bias)["h"]
print(f"[{PRESET}] package (peepholes 0) vs keras ConvLSTM2D: max |difference| = {np.max(np.abs(got - expected)):.2e}")
print(f"[{PRESET}] NumPy loop            vs keras ConvLSTM2D: max |difference| = {np.max(np.abs(numpy_h - expected[0])):.2e}")
assert np.allclose(got, expected, atol=1e-5) and np.allclose(numpy_h, expected[0], atol=1e-5)

# %% [markdown]
# ### Check 2: peepholes on, the package cell equals the NumPy loop
#
# Keras cannot check the peepholes, so our NumPy loop does. We give the three peephole vectors
# random, clearly non-zero values (a trained model's are not zero either) and compare again.

# %%
peepholes = [rng.normal(0, 1.0, F).astype("float32") for _ in range(3)]
ours.set_weights([kernel, recurrent_kernel, bias, *peepholes])
got = keras.ops.convert_to_numpy(ours(sequence))[0]
numpy_h = numpy_convlstm(sequence[0].astype("float64"), kernel, recurrent_kernel, bias, *peepholes)["h"]
no_peep = numpy_convlstm(sequence[0].astype("float64"), kernel, recurrent_kernel, bias)["h"]
print(f"[{PRESET}] package (random peepholes) vs NumPy loop: max |difference| = {np.max(np.abs(got - numpy_h)):.2e}")
print(f"[{PRESET}] the peepholes matter: output moves by up to {np.max(np.abs(numpy_h - no_peep)):.2f} when they are dropped")
assert np.allclose(got, numpy_h, atol=1e-5)

# %% [markdown]
# :::{admonition} Our reading: one peephole weight per hidden channel
# :class: note
# The paper does not say what shape $W_{ci}, W_{cf}, W_{co}$ have. In Shi et al.'s ConvLSTM they
# are full tensors, one weight per pixel and channel, which ties a trained model to one image
# size. We store **one number per hidden channel** and broadcast it over the image, so the same
# layer works on 160 × 192 and on any other size; this is the vector LSTM's peephole applied at
# every pixel. With those weights at zero the cell is exactly Keras's `ConvLSTM2D` (Check 1). See
# {doc}`../readings` for the full list of such readings.
# :::
#
# :::{admonition} Exercise 3.3: one ConvLSTM step in Keras
# :class: exercise
# The NumPy loop above is for reading; a layer must be written with `keras.ops`, so that it runs on
# tensors, inside a model, on any backend, and can be differentiated. Write
# `my_convlstm_step(x_t, h, c, kernel, recurrent_kernel, bias, w_ci, w_cf, w_co)` returning
# `(h_new, c_new)` for one step of Eq. (12)–(16), with `x_t` of shape `[B, H, W, C]`, `h` and `c`
# of shape `[B, H, W, F]`, the kernels and bias of a `PeepholeConvLSTM2D` (`[k, k, C, 4F]`,
# `[k, k, F, 4F]`, `[4F]`, gate order i, f, c, o) and the three peephole vectors `[F]`. Use
# `keras.ops.conv(..., padding="same")`, `keras.ops.split`, `keras.ops.sigmoid` and
# `keras.ops.tanh`. The check gives a `PeepholeConvLSTM2D` random weights with clearly non-zero
# peepholes, runs a 3-step sequence through it, and through your step from `h = c = 0`.
# :::

# %% tags=["exercise"] solution="ex3_3"
def my_convlstm_step(x_t, h, c, kernel, recurrent_kernel, bias, w_ci, w_cf, w_co):
    ...  # your code, keras.ops only: return h_new, c_new


# Stuck? Load the solution into a new cell with:  %load solutions/ex3_3.py

# %% tags=["hide-input"]
def _run_steps(step, xs, weights, peepholes):
    """h of every step of `step` over xs [B, T, H, W, C], from h = c = 0; [B, T, H, W, F]."""
    F = weights[1].shape[-1] // 4
    h = c = keras.ops.zeros((*xs.shape[:1], *xs.shape[2:4], F))
    hs = []
    for t in range(xs.shape[1]):
        result = step(keras.ops.convert_to_tensor(xs[:, t]), h, c, *weights, *peepholes)
        assert result is not None, "my_convlstm_step returns nothing yet: return (h_new, c_new)."
        h, c = result
        hs.append(keras.ops.convert_to_numpy(h))
    return np.stack(hs, axis=1)


def check_ex33(step):
    r = np.random.default_rng(33)
    B, T, Hs, Ws, C, F = 2, 3, 9, 11, 2, 3
    xs = r.normal(size=(B, T, Hs, Ws, C)).astype("float32")
    cell = PeepholeConvLSTM2D(F, 3)
    cell.build(xs.shape)
    weights = [r.normal(0, 0.5, size=shape).astype("float32") for shape in ((3, 3, C, 4 * F), (3, 3, F, 4 * F), 4 * F)]
    peepholes = [np.array(v, "float32") for v in ([1.5, -1.0, 0.8], [-1.2, 0.9, 1.4], [1.1, 1.3, -1.5])]
    cell.set_weights([*weights, *peepholes])
    expected = keras.ops.convert_to_numpy(cell(xs))
    got = _run_steps(step, xs, weights, peepholes)
    assert got.shape == expected.shape, f"h of every step: {got.shape}, expected {expected.shape} ([B, T, H, W, F])."
    err = float(np.abs(got - expected).max())
    if err > 1e-4:
        cell.set_weights([*weights, *(np.zeros(F, "float32") for _ in range(3))])
        if np.abs(got - keras.ops.convert_to_numpy(cell(xs))).max() < 1e-4:
            hint = "Your step ignores the peepholes: add W_ci * C_{t-1}, W_cf * C_{t-1} and W_co * C_t to the gates."
        else:
            hint = ("Check the gate order (i, f, c, o), which cell state each peephole sees (the output gate: the "
                    "new one) and which nonlinearity each part uses.")
        raise AssertionError(f"h differs from PeepholeConvLSTM2D by {err:.3g} over {T} steps. {hint}")
    print(f"Correct: your keras.ops step reproduces PeepholeConvLSTM2D over {T} steps (max difference {err:.1e}).")


_ = check(check_ex33, my_convlstm_step, exercise="3.3")

# %% [markdown]
# ## The gates of the LSTM-COR model along the channel sequence
#
# Now the real thing. We take the LSTM-COR model (the shipped trained weights if the package has
# them, otherwise a freshly built model), run it on a brain pair from the test split, and read the
# ConvLSTM's input (the output of `to_sequence`) through a small sub-model. Replaying the layer
# with our NumPy loop on that input gives every gate at every step; we first make sure the replay
# reproduces the layer's own output.

# %%
ds = load_dataset(DATA)
try:
    model = load_weights(shipped_weights("lstmcor"))
    TRAINED = True
    print("using the shipped trained LSTM-COR weights")
except FileNotFoundError as error:
    model = build_lstmcor(ds.shape)
    TRAINED = False
    print("no shipped weights:", str(error).split(";")[0])
    print("-> using an UNTRAINED LSTM-COR model: its gates show the initial weights, not learned behaviour.")

moving_i, fixed_i = pair_indices(ds, "test", 1, seed=SEED)[0]
moving = ds.images[moving_i][None, ..., None]
fixed = ds.images[fixed_i][None, ..., None]
probe = keras.Model(model.inputs, [model.get_layer("to_sequence").output, model.get_layer("convlstm").output])
lstm_in, lstm_out = (np.asarray(a) for a in probe.predict_on_batch([moving, fixed]))
cell = model.get_layer("convlstm")
weights = {w.path.split("/")[-1]: keras.ops.convert_to_numpy(w) for w in cell.weights}
replay = numpy_convlstm(lstm_in[0].astype("float64"), weights["kernel"], weights["recurrent_kernel"], weights["bias"],
                        weights.get("peephole_i"), weights.get("peephole_f"), weights.get("peephole_o"))
n_steps, n_hidden = lstm_in.shape[1], lstm_out.shape[-1]
print(f"pair (moving {moving_i}, fixed {fixed_i}); ConvLSTM input {lstm_in.shape} -> output {lstm_out.shape}")
print(f"[{PRESET}] NumPy replay vs the model's convlstm layer: max |difference| = "
      f"{np.max(np.abs(replay['h'] - lstm_out[0])):.2e}")
assert np.allclose(replay["h"], lstm_out[0], atol=1e-4)

# %% [markdown]
# The left panel of {numref}`fig-03-gate-means` averages each gate over the image (and over the
# hidden channels) at every step; the right panel shows how big the memory and the output are.
# A forget gate near 1 means the cell keeps what earlier channels wrote; an input gate near 0
# means the current channel adds little. For an untrained model the gates sit near the values
# their initial biases give them (forget ≈ σ(1) ≈ 0.73, the others ≈ 0.5): there is nothing to
# read into them until the model has been trained (chapter 6).

# %% mystnb={"figure": {"caption": "Gate means per step of the channel sequence (left) and the mean absolute cell and hidden state (right), for one test pair.", "name": "fig-03-gate-means"}}
steps = np.arange(n_steps)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for name, colour in (("i", "tab:blue"), ("f", "tab:orange"), ("o", "tab:green")):
    mean = replay[name].mean(axis=(1, 2, 3))
    lo, hi = np.percentile(replay[name], [10, 90], axis=(1, 2, 3))
    axes[0].plot(steps, mean, marker="o", color=colour, label={"i": "input gate", "f": "forget gate", "o": "output gate"}[name])
    axes[0].fill_between(steps, lo, hi, color=colour, alpha=0.15)
axes[0].set_ylim(0, 1)
axes[0].set_title("gate value (mean, 10-90% band)")
axes[0].legend(fontsize=8)
axes[1].plot(steps, np.abs(replay["c"]).mean(axis=(1, 2, 3)), marker="o", label="|cell state|")
axes[1].plot(steps, np.abs(replay["h"]).mean(axis=(1, 2, 3)), marker="o", label="|hidden state|")
axes[1].set_title("state size")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.set_xlabel("step t = channel of the sequence generator")
    ax.grid(alpha=0.3)
fig.suptitle(f"[{PRESET}] {'trained' if TRAINED else 'untrained'} LSTM-COR, test pair ({moving_i}, {fixed_i})")
fig.tight_layout()
plt.show()


# %%
def gate_panel(t, hidden=0, axes=None):
    """Input channel, the three gates and the hidden state of one step, for one hidden channel."""
    panels = [(lstm_in[0, t, :, :, 0], f"input channel $x_{{{t}}}$", "gray", None),
              (replay["i"][t, :, :, hidden], "input gate $i$", "viridis", (0, 1)),
              (replay["f"][t, :, :, hidden], "forget gate $f$", "viridis", (0, 1)),
              (replay["o"][t, :, :, hidden], "output gate $o$", "viridis", (0, 1)),
              (replay["h"][t, :, :, hidden], f"hidden state $h_{{{t}}}$", "RdBu_r", None)]
    if axes is None:
        fig, axes = plt.subplots(1, 5, figsize=(14, 2.7))
    for ax, (image, title, cmap, limits) in zip(axes, panels):
        if limits is None and cmap == "RdBu_r":
            m = float(np.abs(image).max()) or 1.0
            limits = (-m, m)
        ax.imshow(image, cmap=cmap, vmin=None if limits is None else limits[0], vmax=None if limits is None else limits[1])
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return axes


# %% [markdown]
# {numref}`fig-03-gate-maps` shows the gate *maps* for a few steps. Gates are computed per pixel,
# so they can open over one structure and close over another: that is where a ConvLSTM differs
# from channel attention, which gives one number per channel (chapter 1).

# %% mystnb={"figure": {"caption": "One row per step: the channel that enters the ConvLSTM, the input, forget and output gates of hidden channel 0 (0 = closed, 1 = open) and the hidden state it emits.", "name": "fig-03-gate-maps"}}
shown = np.unique(np.linspace(0, n_steps - 1, 4).round().astype(int))
fig, axes = plt.subplots(len(shown), 5, figsize=(14, 2.6 * len(shown)))
for row, t in zip(axes, shown):
    gate_panel(int(t), 0, row)
    row[0].text(-0.08, 0.5, f"step {t}", transform=row[0].transAxes, rotation=90, va="center", ha="right")
fig.tight_layout()
plt.show()

# %% [markdown]
# Explore all steps and hidden channels with the slider (in JupyterLab; the book shows the static
# view below it).

# %% tags=["widget"]
import ipywidgets as widgets
from IPython.display import display

from lstmcor.plots import live_view

# Move a slider to draw (nothing is drawn while the cell runs, so batch runs never wait on it).
display(live_view(lambda step, hidden: gate_panel(step, hidden),
                  step=widgets.IntSlider(n_steps // 2, 0, n_steps - 1, description="step t"),
                  hidden=widgets.IntSlider(0, 0, n_hidden - 1, description="hidden ch.")))

# %% mystnb={"figure": {"caption": "Static view of the widget: step n/2, hidden channel 0.", "name": "fig-03-widget-static"}}
gate_panel(n_steps // 2, 0)
plt.show()

# %% [markdown]
# ### Does the order of the channels matter?
#
# A recurrent network is not symmetric in its inputs: the last step has the last word. Feeding the
# same 16 channels in reverse order through the same cell gives a different result, which is why
# the sequence generator and the ConvLSTM must be trained *together*: the U-Net learns to put in
# each channel what the recurrence, at that position, can use.

# %%
reversed_run = numpy_convlstm(lstm_in[0, ::-1].astype("float64"), weights["kernel"], weights["recurrent_kernel"],
                              weights["bias"], weights.get("peephole_i"), weights.get("peephole_f"),
                              weights.get("peephole_o"))
final_fwd, final_rev = replay["h"][-1], reversed_run["h"][-1]
rel = np.linalg.norm(final_fwd - final_rev) / (np.linalg.norm(final_fwd) + 1e-12)
print(f"[{PRESET}] last hidden state, forward vs reversed channel order: relative difference {rel:.2f}")

# %% [markdown]
# :::{admonition} Exercise 3.4 (experiment): how far back does the ConvLSTM remember?
# :class: exercise
# The forget gate decides how long what a channel wrote stays in the memory (the pulse figure
# above, for one unit). Measure it on the model's own ConvLSTM and its input for the test pair
# (`cell`, `lstm_in`). Write `memory_profile(cell, sequence, forget_shift=0.0)` that
#
# 1. makes a copy of `cell` (`PeepholeConvLSTM2D.from_config(cell.get_config())`, built on
#    `sequence.shape`) whose weights are the cell's, except that `forget_shift` is **added to the
#    forget-gate bias** (entries `F:2F` of the bias, gate order i, f, c, o);
# 2. runs `sequence` (`[1, T, H, W, 1]`) through the copy, and again with step `t` set to zero,
#    for every `t`;
# 3. returns an array of `T` numbers: the change of the **last** hidden state when step `t` is
#    removed, relative to the size of the last hidden state, $\lVert h_T - h_T^{(t)} \rVert /
#    \lVert h_T \rVert$.
#
# Then plot the profile for forget shifts $-3$, $0$ and $+3$. What happens to the influence of the
# early channels? What does that mean for the flow head, which receives the hidden state of
# *every* step, not only the last? (Tip: batch the `T + 1` sequences into one call.)
# :::

# %% tags=["exercise"] solution="ex3_4" solution_tags=["hide-input"]
def memory_profile(cell, sequence, forget_shift=0.0):
    ...  # your code: return an array of T relative changes


# Stuck? Load the solution into a new cell with:  %load solutions/ex3_4.py

# %% tags=["hide-input"]
def check_ex34(memory_profile):
    r = np.random.default_rng(34)
    xs = r.normal(size=(1, 4, 7, 8, 1)).astype("float32")
    toy = PeepholeConvLSTM2D(2, 3)
    toy.build(xs.shape)
    toy.set_weights([r.normal(0, 0.5, size=w.shape).astype("float32") for w in toy.get_weights()])
    bias_before = toy.get_weights()[2].copy()
    for shift in (0.0, 2.0):
        got = memory_profile(toy, xs.copy(), shift)
        assert got is not None, "memory_profile returns nothing yet: return one number per step."
        got = np.asarray(got, dtype="float64").ravel()
        copy = PeepholeConvLSTM2D(2, 3)
        copy.build(xs.shape)
        weights = toy.get_weights()
        weights[2] = weights[2] + np.r_[0, 0, shift, shift, 0, 0, 0, 0].astype("float32")
        copy.set_weights(weights)
        base = keras.ops.convert_to_numpy(copy(xs))[0, -1]
        want = []
        for t in range(4):
            cut = xs.copy()
            cut[0, t] = 0
            want.append(np.linalg.norm(keras.ops.convert_to_numpy(copy(cut))[0, -1] - base) / np.linalg.norm(base))
        assert got.shape == (4,), f"{got.shape[0]} numbers for a 4-step sequence: one per step."
        if not np.allclose(got, want, rtol=1e-3, atol=1e-6):
            raise AssertionError(f"forget shift {shift}: you get {np.round(got, 4)}, expected {np.round(want, 4)}. "
                                 "Shift only the forget gate's bias (entries F:2F), and compare the LAST hidden state.")
    assert np.array_equal(bias_before, toy.get_weights()[2]), "memory_profile must not change the cell's own weights."
    print("Correct: your memory profile matches the reference on a random 4-step cell, with and without a forget shift.")


_ = check(check_ex34, memory_profile, exercise="3.4")

# %% [markdown]
# :::{admonition} Solution: what the experiment shows
# :class: dropdown
# With the forget bias raised, $f = \sigma(\cdot)$ moves towards 1 and the cell keeps what early
# channels wrote: the curve flattens and the first steps still move the last hidden state (compare
# the printed "first/last" ratios). With the bias lowered, $f$ moves towards 0 and the memory
# empties at every step: the last state depends almost only on the last few channels, and the
# curve falls steeply towards the first step (the printed ratios say by how much in this run).
# The unshifted curve is this model's own memory length (the figure's title says whether the
# weights are trained; an untrained cell starts at $b_f = 1$, Keras's unit forget bias).
#
# For LSTM-COR this matters less than for a classifier that reads only the last state: the head
# receives the hidden state of *every* step (`SequenceToChannels`), so a channel removed early
# still reaches the field through its own step's output, whatever the memory length. What the
# forget gate controls is how much each step's output is *also* shaped by the channels before
# it, i.e. how strongly the recurrence mixes channels. A network that does not need that mixing
# can learn a small forget gate and behave almost like a per-channel convolution (the `conv`
# ablation of {doc}`08_ablations` tests what the recurrence is worth).
# :::
#
# ## Summary
#
# - [Eq. (6)](#eq-paper-6) turns `n` feature channels into `n` steps of a one-channel image
#   sequence; `ChannelsToSequence` / `SequenceToChannels` do the reshaping, and the flow head
#   receives `n·F` channels (64 by default).
# - An LSTM step ([Eq. (7)–(11)](#eq-paper-7)) is three sigmoid gates around a memory; the
#   peepholes let the gates see that memory. A ConvLSTM ([Eq. (12)–(16)](#eq-paper-12)) replaces
#   the matrix products by convolutions, so states and gates are images.
# - The package's `PeepholeConvLSTM2D` matches `keras.layers.ConvLSTM2D` with the peepholes at
#   zero and our NumPy loop with random peepholes; its peephole weights are one value per hidden
#   channel (our reading).
# - Channel order is not given by the data; the network learns it together with the recurrence.
#   The forget gate sets how far back the recurrence reaches along the channels; the head sees
#   every step's hidden state, so the recurrence mixes channels rather than summarising them.
#
# **Next:** {doc}`04_flow_head` turns the 64 ConvLSTM channels into a displacement field with a
# depthwise convolution and a final convolution to two channels.

# %% tags=["remove-cell"]
print(f"[{PRESET}] chapter 3 ran in {time.time() - START:.1f} s")
