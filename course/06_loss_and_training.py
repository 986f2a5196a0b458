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
# # 6. The loss and training
#
# Chapters 1 to 5 built a network that turns a pair of images into a displacement field and a
# moved image. Nothing so far tells it *which* field is good. This chapter writes the training
# objective of the paper, [Eq. (21)](#eq-paper-21) to [Eq. (23)](#eq-paper-23): an image
# similarity term and a smoothness penalty on the field, balanced by a weight $\lambda$. We
# compute each term by hand, check it against `lstmcor.losses`, watch what $\lambda$ does to a
# registration, and then train LSTM-COR and VoxelMorph with the package's trainer, on a CPU or
# on a GPU kernel.
#
# **Learning goals.** After this chapter you can
#
# 1. write the mean squared error of Eq. (21) and the diffusion regulariser of Eq. (22) in NumPy
#    and explain why the paper's sum and our mean differ only by a scale;
# 2. explain, with pictures, what happens to a field when $\lambda$ is too small or too large;
# 3. train both networks with `lstmcor.training.train`, on a CPU or a GPU, and read their loss
#    curves as in the paper's Fig. 5;
# 4. use a run folder's checkpoint to stop a training and resume it exactly where it was.

# %% tags=["parameters"]
PRESET = "quick"          # "ci" (seconds) | "quick" (minutes, laptop CPU) | "paper" (GPU)
DATA = "default"
SEED = 0
OUTPUT_DIR = "outputs/06_loss_and_training"

# %% [markdown]
# `PRESET` sets the size of everything that takes time in this chapter: the number of
# optimisation steps in the $\lambda$ experiment and the training budget of the two networks
# (`lstmcor.settings.PRESETS`).

# %%
import json
import logging
import os
import time

os.makedirs(OUTPUT_DIR, exist_ok=True)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # quieter TensorFlow start (ignored by JAX and PyTorch)
logging.getLogger("tensorflow").setLevel(logging.ERROR)

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from keras import ops

from lstmcor.data import load_dataset, pair_indices
from lstmcor.evaluation import weights_dir
from lstmcor.exercises import check
from lstmcor.losses import grad_l2, mse, total_loss
from lstmcor.metrics import endpoint_error, folding_fraction, jacobian_determinant
from lstmcor.plots import loss_curves, plot_grid, show_images
from lstmcor.runtime import device_name
from lstmcor.settings import LAMBDA, PRESETS
from lstmcor.training import compile_model, read_log, train
from lstmcor.transform import SpatialTransformer, warp

FIT_STEPS = {"ci": 100, "quick": 400, "paper": 1000}[PRESET]   # steps of the lambda experiment
keras.utils.set_random_seed(SEED)
ds = load_dataset(DATA)
print(f"[{PRESET}] Keras {keras.__version__}, backend {keras.backend.backend()}, device {device_name()}")
print(f"[{PRESET}] {len(ds)} images of {ds.shape[0]} x {ds.shape[1]}; training preset {PRESETS[PRESET]}")

# %% [markdown]
# We need one pair to work on. The embedded data set is made of two real brains, each deformed
# into many pseudo-subjects with known deformations (chapter {doc}`00_registration_problem`).
# When moving and fixed come from the same brain, the data set knows the **true** displacement
# between them, so we pick such a test pair: it lets us say not only whether the images match,
# but whether the field is right.

# %%
candidates = pair_indices(ds, "test", 32, SEED)
M, F = next((m, f) for m, f in candidates if ds.true_displacement(m, f) is not None)
moving, fixed = ds.images[M], ds.images[F]
truth = ds.true_displacement(M, F).astype("float32")      # [H, W, 2], pixels, channel 0 = rows
brain = ds.labels[F] > 0
H, W = moving.shape
print(f"[{PRESET}] pair: moving {M} ({ds.base_of(M)}), fixed {F} ({ds.base_of(F)}); "
      f"true displacement: mean {np.linalg.norm(truth, axis=-1)[brain].mean():.2f} px, "
      f"max {np.linalg.norm(truth, axis=-1).max():.2f} px")

# %% mystnb={"figure": {"caption": "The pair of this chapter: moving, fixed, their difference, and the moving image warped by the true displacement.", "name": "fig-06-pair"}}
by_truth = warp(moving, truth)
show_images([moving, fixed, moving - fixed, by_truth, by_truth - fixed],
            ["moving", "fixed", "diff before", "moving warped by the truth", "diff after (truth)"])
plt.show()

# %% [markdown]
# ## Similarity: the mean squared error, Eq. (21)
#
# An unsupervised registration network never sees a true field. It only sees how well the moved
# image $I_D = T(I_M)$ matches the fixed image $I_F$. The paper measures the mismatch as the
# average, over the set $\alpha$ of pixels, of the squared intensity difference:
#
# (eq-paper-21)=
# $$
# \mathcal{L}_{sim}(I_F, I_D) = \mathcal{L}_{sim}\big(I_F, T(I_M)\big) = \mathrm{MSE}\big(I_F, T(I_M)\big)
#   = \frac{1}{|\alpha|} \sum_{p \in \alpha} \big[I_F(p) - T(I_M)(p)\big]^2 \tag{21}
# $$
#
# ($\alpha$ is the pixel grid; $|\alpha| = H \times W$.) It is the loss of the VoxelMorph paper
# {cite:p}`balakrishnan2019voxelmorph` for images scaled to $[0, 1]$, kept unchanged so that
# the comparison between the two networks is about the networks and not the loss. In NumPy it
# is one line; the package's `lstmcor.losses.mse` takes batches `[B, H, W, 1]` and returns one
# value per pair.

# %%
def mse_numpy(fixed_image, moved_image):
    """Eq. (21): mean over the pixels of the squared intensity difference."""
    return float(np.mean((fixed_image - moved_image) ** 2))


for name, moved_image in [("no registration", moving), ("warped by the truth", by_truth)]:
    ours = mse_numpy(fixed, moved_image)
    package = float(ops.convert_to_numpy(mse(fixed[None, ..., None], moved_image[None, ..., None]))[0])
    assert np.isclose(ours, package, rtol=1e-5), (ours, package)
    print(f"[{PRESET}] MSE {name:20s}: NumPy {ours:.6f}   lstmcor.losses.mse {package:.6f}")

# %% [markdown]
# Warping by the true displacement lowers the MSE a lot but not to zero: the pseudo-subjects
# also differ a little in intensity, and bilinear sampling smooths. So even the perfect field
# leaves a residual, and a network that drives the MSE further down than the truth does is
# matching intensities, not anatomy. Keep that in mind for the $\lambda$ experiment below.
#
# ## Smoothness: the diffusion regulariser, Eq. (22)
#
# MSE alone rewards any field that makes the pictures match, including fields that tear or fold
# the image to copy intensities from far away. The second term charges the field for changing
# quickly from pixel to pixel. The paper writes it as the squared size of the spatial gradient
# of $D$, summed over the pixels:
#
# (eq-paper-22)=
# $$
# \mathcal{L}_{smooth}(D) = \sum_{p \in \alpha} \big\lVert \nabla D(p) \big\rVert^2 \tag{22}
# $$
#
# It is called *diffusion* regularisation because this energy is the one whose gradient flow is
# the heat (diffusion) equation: it evens the field out. On a pixel grid the derivative becomes a
# **forward difference**, e.g. along rows $D(r+1, c) - D(r, c)$, taken for both field channels.
#
# :::{admonition} Our reading: a mean instead of a sum
# :class: note
# The package follows VoxelMorph's `Grad('l2')`: for each axis it takes the **mean** of the
# squared forward differences (over pixels and both field channels), and averages the two axes.
# The paper's **sum** is the same quantity multiplied by (almost exactly) a constant, the number
# of differences, so it only changes which value of $\lambda$ gives a given balance. The
# regulariser is applied to the field that actually warps the image (the SE-weighted $D'$ of
# chapter {doc}`05_spatial_transformer`). See {doc}`../readings`.
# :::

# %%
def grad_numpy(field):
    """Eq. (22) as a mean: squared forward differences along rows and columns, averaged."""
    d_rows = field[1:, :, :] - field[:-1, :, :]
    d_cols = field[:, 1:, :] - field[:, :-1, :]
    return float((np.mean(d_rows ** 2) + np.mean(d_cols ** 2)) / 2)


def grad_sum_numpy(field):
    """Eq. (22) as the paper writes it: the sum over pixels of the squared gradient norm."""
    d_rows = field[1:, :, :] - field[:-1, :, :]
    d_cols = field[:, 1:, :] - field[:, :-1, :]
    return float(np.sum(d_rows ** 2) + np.sum(d_cols ** 2))


ours = grad_numpy(truth)
package = float(ops.convert_to_numpy(grad_l2(truth[None]))[0])
assert np.isclose(ours, package, rtol=1e-5), (ours, package)
print(f"[{PRESET}] Grad of the true field: NumPy {ours:.6f}   lstmcor.losses.grad_l2 {package:.6f}")

rng = np.random.default_rng(SEED)
ratios = [grad_sum_numpy(f) / grad_numpy(f) for f in
          [truth, rng.normal(size=truth.shape), np.cumsum(rng.normal(size=truth.shape), axis=0)]]
print(f"[{PRESET}] sum / mean for three very different fields: {', '.join(f'{r:,.1f}' for r in ratios)}"
      f"  (about 4 H W = {4 * H * W:,})")

# %% [markdown]
# The ratio barely moves between a smooth field, white noise and a random walk: the sum is the
# mean times about $4HW$ (two axes, two channels, $H \times W$ pixels). A $\lambda$ tuned for
# one form is converted to the other by that factor.
#
# Where does the true field pay its smoothness? The map below shows the squared size of the
# forward differences per pixel. The synthetic deformation is defined over the whole image, so the
# background pays too; the cost is highest where the deformation bends sharply.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Where the smoothness term of Eq. (22) is paid, for the true displacement of the pair: squared forward differences along rows, along columns, and their sum.", "name": "fig-06-grad-map"}}
d_rows = np.zeros_like(truth)
d_cols = np.zeros_like(truth)
d_rows[:-1] = truth[1:] - truth[:-1]
d_cols[:, :-1] = truth[:, 1:] - truth[:, :-1]
maps = [np.sum(d_rows ** 2, -1), np.sum(d_cols ** 2, -1)]
maps.append(maps[0] + maps[1])
fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.3))
for ax, image, title in zip(axes, maps, ["along rows", "along columns", "both: $\\|\\nabla D\\|^2$"]):
    im = ax.imshow(image, cmap="magma")
    ax.contour(ds.labels[F] > 0, levels=[0.5], colors="white", linewidths=0.5)
    ax.set_title(title)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.suptitle("squared forward differences of the true field, (px/px)$^2$")
fig.tight_layout()
plt.show()

# %% [markdown]
# :::{admonition} Exercise 6.1: the smoothness of a linear field
# :class: exercise
# Take the linear field $D(r, c) = \big(a r + b c,\; c_0 r + d c\big)$ (channel 0 along rows)
# with $a = 0.1$, $b = -0.05$, $c_0 = 0.02$, $d = 0.2$, on a $32 \times 48$ grid. Work out with
# pen and paper what `grad_l2` returns for it, as a formula in $a, b, c_0, d$, and put the number
# in `answer_61`. Hint: a forward difference of a linear function is the same at every pixel.
# :::

# %% tags=["exercise"] solution="ex6_1"
a, b, c0, d = 0.1, -0.05, 0.02, 0.2
answer_61 = None   # your number: what grad_l2 returns for this field
# Stuck? Load the solution into a new cell with:  %load solutions/ex6_1.py

# %%
def check_ex61(answer):
    rows, cols = np.mgrid[0:32, 0:48].astype("float32")
    field = np.stack([a * rows + b * cols, c0 * rows + d * cols], axis=-1)
    expected = float(ops.convert_to_numpy(grad_l2(field[None]))[0])
    assert answer is not None and np.isfinite(answer), "Set answer_61 to a number."
    if np.isclose(answer, 4 * expected, rtol=1e-3):
        raise AssertionError("Four times too large: average over both channels and both axes (means, not sums).")
    if np.isclose(answer, 2 * expected, rtol=1e-3):
        raise AssertionError("Twice too large: the mean is also over the two field channels, or the two axes are averaged.")
    assert np.isclose(answer, expected, rtol=1e-3), (
        f"{answer:.6f} is not what grad_l2 returns. Each axis gives the mean of the squared differences over "
        "both channels; the two axes are then averaged.")
    print(f"Correct: grad_l2 of the linear field is {expected:.6f}, the same at any grid size.")


_ = check(check_ex61, answer_61, exercise="6.1")

# %% [markdown]
# ## The total loss, Eq. (23)
#
# The training loss adds the two terms, with $\lambda$ setting how much smoothness is worth in
# units of MSE:
#
# (eq-paper-23)=
# $$
# \mathcal{L}(I_F, D, I_D) = \mathcal{L}_{sim}(I_F, I_D) + \lambda\, \mathcal{L}_{smooth}(D) \tag{23}
# $$
#
# (The paper reuses the name $\mathcal{L}_{sim}$ on the left; we call the total $\mathcal{L}$.)
# The paper does not give $\lambda$. VoxelMorph advises 0.01 for MSE on images in $[0, 1]$; the
# course takes the weight that registered its validation pairs best in a measurement,
# `lstmcor.settings.LAMBDA` (printed below; {doc}`../readings`, *Weight λ*, has the measurement).
#
# In Keras, Eq. (23) is not one function but two losses with weights: a model with outputs
# `[moved, flow]` is compiled with `loss=[MSE(), Grad()]` and `loss_weights=[1, λ]`, the fixed
# image being the target of the first output (the second target is ignored). That is what
# `lstmcor.training.compile_model` does. To check it, we need a model whose field we can set by
# hand: a tiny Keras model whose **only weight is the field itself**, and whose output is the
# moving image warped by it. It will also serve the $\lambda$ experiment.

# %%
class FreeField(keras.layers.Layer):
    """A layer whose single weight is a displacement field [1, H, W, 2]; it ignores its input's values."""

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        self.field_shape = tuple(shape)

    def build(self, input_shape):
        self.field = self.add_weight(shape=(1, *self.field_shape, 2), initializer="zeros", name="field")

    def call(self, image):
        return ops.tile(self.field, [ops.shape(image)[0], 1, 1, 1])


def free_field_model():
    """moving -> [moving warped by the field, the field]: the layout of the real networks' outputs."""
    image = keras.Input((H, W, 1), name="moving")
    field = FreeField((H, W), name="free_field")(image)
    moved_image = SpatialTransformer(name="transformer")([image, field])
    return keras.Model(image, [moved_image, field], name="free_field")


net = compile_model(free_field_model(), learning_rate=0.1, lam=LAMBDA)
net.get_layer("free_field").field.assign(truth[None])
x_pair = moving[None, ..., None]
y_pair = [fixed[None, ..., None], np.zeros((1, H, W, 2), "float32")]
keras_loss = net.evaluate(x_pair, y_pair, verbose=0, return_dict=True)["loss"]
by_hand = mse_numpy(fixed, by_truth) + LAMBDA * grad_numpy(truth)
package = float(ops.convert_to_numpy(total_loss(fixed[None, ..., None], by_truth[None, ..., None], truth[None], LAMBDA)))
print(f"[{PRESET}] Eq. (23) for the true field, lambda = {LAMBDA}:")
print(f"   by hand {by_hand:.6f}   lstmcor.losses.total_loss {package:.6f}   compiled Keras model {keras_loss:.6f}")
assert np.isclose(by_hand, package, rtol=1e-4) and np.isclose(by_hand, keras_loss, rtol=1e-3)

# %% [markdown]
# ## The trade-off: what $\lambda$ does
#
# The `FreeField` model lets us watch Eq. (23) at work without any network in between: start
# from the zero field and let Adam move every displacement vector directly to lower the loss on
# this one pair, once for each $\lambda$. This is classical, iterative registration (the way SyN
# works, in a simpler form); a network has to *predict* a field like the result for every pair
# in one pass. The learning rate 0.1 here is in pixels per step, for the field itself; it has
# nothing to do with the network's learning rate.

# %%
LAMBDAS = [0.0, 0.003, 0.01, 0.1, 1.0, 10.0]    # with the course's weight and VoxelMorph's
BLOCK = 10                                      # steps between two points of the loss curve
x_steps = np.repeat(x_pair, BLOCK, axis=0)
y_steps = [np.repeat(y_pair[0], BLOCK, axis=0), np.zeros((BLOCK, H, W, 2), "float32")]
results = {}
start = time.perf_counter()
for lam in LAMBDAS:
    keras.utils.set_random_seed(SEED)
    net = compile_model(free_field_model(), learning_rate=0.1, lam=lam)
    history = net.fit(x_steps, y_steps, batch_size=1, epochs=FIT_STEPS // BLOCK, verbose=0, shuffle=False).history
    field = ops.convert_to_numpy(net.get_layer("free_field").field)[0]
    results[lam] = {
        "field": field, "moved": warp(moving, field), "history": history,
        "mse": mse_numpy(fixed, warp(moving, field)), "grad": grad_numpy(field),
        "folding": 100 * folding_fraction(field), "epe": endpoint_error(field, truth, brain),
    }
print(f"[{PRESET}] {len(LAMBDAS)} registrations of {FIT_STEPS} Adam steps in {time.perf_counter() - start:.1f} s")

rows = ["| $\\lambda$ | MSE | Grad | folding (% px) | error vs truth (px) |", "|---|---|---|---|---|"]
rows.append(f"| no registration | {mse_numpy(fixed, moving):.5f} | 0 | 0 | {endpoint_error(0 * truth, truth, brain):.2f} |")
rows.append(f"| the true field | {mse_numpy(fixed, by_truth):.5f} | {grad_numpy(truth):.4f} | "
            f"{100 * folding_fraction(truth):.2f} | 0 |")
for lam, r in results.items():
    rows.append(f"| {lam:g} | {r['mse']:.5f} | {r['grad']:.4f} | {r['folding']:.2f} | {r['epe']:.2f} |")
display(Markdown(f"**[{PRESET}] One pair registered by gradient descent on Eq. (23)**\n\n" + "\n".join(rows)))
best_mse = min(LAMBDAS, key=lambda lam: results[lam]["mse"])
best_epe = min(LAMBDAS, key=lambda lam: results[lam]["epe"])
print(f"[{PRESET}] lowest MSE at lambda = {best_mse:g}; field closest to the truth at lambda = {best_epe:g}; "
      f"folding at lambda = 0: {results[0.0]['folding']:.2f} % of the pixels")
with open(os.path.join(OUTPUT_DIR, "lambda_sweep.json"), "w") as handle:
    json.dump({str(k): {m: v[m] for m in ("mse", "grad", "folding", "epe")} for k, v in results.items()}, handle, indent=2)


# %% [markdown]
# Each row is one optimisation. Explore them one by one with the slider (in JupyterLab), or look
# at the static figure under it, and then all of them side by side.

# %%
def show_lambda(lam):
    """Moved image, difference to the fixed image, warped grid and Jacobian determinant for one lambda."""
    r = results[lam]
    det = jacobian_determinant(r["field"])
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.3))
    axes[0].imshow(r["moved"], cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"moved, MSE {r['mse']:.4f}")
    diff = r["moved"] - fixed
    axes[1].imshow(diff, cmap="RdBu_r", vmin=-0.5, vmax=0.5)
    axes[1].set_title("diff after")
    axes[2].imshow(fixed, cmap="gray", vmin=0, vmax=1, alpha=0.35)
    plot_grid(axes[2], r["field"], step=6, linewidth=0.5)
    axes[2].set_title(f"warped grid, Grad {r['grad']:.3f}")
    im = axes[3].imshow(det, cmap="RdBu_r", vmin=-1, vmax=3)
    axes[3].contour(det <= 0, levels=[0.5], colors="black", linewidths=0.6)
    axes[3].set_title(f"det J, folding {r['folding']:.1f} %")
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"[{PRESET}] lambda = {lam:g}: error against the true field {r['epe']:.2f} px")
    fig.tight_layout()
    return fig


import ipywidgets as widgets


from IPython.display import display

from lstmcor.plots import live_view  # controls + a view that redraws on change


# %% tags=["widget"]
display(live_view(lambda value: show_lambda(value), value=widgets.SelectionSlider(options=LAMBDAS, value=0.1, description="lambda")))

# %% mystnb={"figure": {"caption": "The widget's view for lambda = 0.1: the moved image, its difference to the fixed image, the warped grid and the Jacobian determinant (black contours: folded pixels).", "name": "fig-06-lambda-widget"}}
show_lambda(0.1)
plt.show()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The lambda trade-off on one pair. Each row is one lambda: the warped grid over the fixed image, the Jacobian determinant (black: folds), and the difference to the fixed image after registration.", "name": "fig-06-lambda-grid"}}
fig, axes = plt.subplots(3, len(LAMBDAS), figsize=(2.6 * len(LAMBDAS), 8.2))
for k, lam in enumerate(LAMBDAS):
    r = results[lam]
    axes[0, k].imshow(fixed, cmap="gray", vmin=0, vmax=1, alpha=0.35)
    plot_grid(axes[0, k], r["field"], step=6, linewidth=0.45)
    axes[0, k].set_title(f"$\\lambda$ = {lam:g}")
    det = jacobian_determinant(r["field"])
    axes[1, k].imshow(det, cmap="RdBu_r", vmin=-1, vmax=3)
    axes[1, k].contour(det <= 0, levels=[0.5], colors="black", linewidths=0.5)
    axes[1, k].set_title(f"folding {r['folding']:.1f} %", fontsize=9)
    axes[2, k].imshow(r["moved"] - fixed, cmap="RdBu_r", vmin=-0.5, vmax=0.5)
    axes[2, k].set_title(f"MSE {r['mse']:.4f}", fontsize=9)
    for row in range(3):
        axes[row, k].axis("off")
axes[0, 0].text(-0.08, 0.5, "warped grid", transform=axes[0, 0].transAxes, rotation=90, va="center", ha="right")
axes[1, 0].text(-0.08, 0.5, "det J", transform=axes[1, 0].transAxes, rotation=90, va="center", ha="right")
axes[2, 0].text(-0.08, 0.5, "diff after", transform=axes[2, 0].transAxes, rotation=90, va="center", ha="right")
fig.suptitle(f"[{PRESET}] the same pair, {FIT_STEPS} steps of Adam on Eq. (23) per lambda")
fig.tight_layout()
plt.show()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The four numbers of the trade-off against lambda (lambda = 0 drawn at the left end). Dashed: the value for the true field.", "name": "fig-06-lambda-curves"}}
xs = np.arange(len(LAMBDAS))
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
panels = [("mse", "MSE (Eq. 21)", mse_numpy(fixed, by_truth)), ("grad", "Grad (Eq. 22)", grad_numpy(truth)),
          ("folding", "folding (% pixels)", 100 * folding_fraction(truth)), ("epe", "error vs truth (px)", 0.0)]
for ax, (key, title, reference) in zip(axes, panels):
    ax.plot(xs, [results[lam][key] for lam in LAMBDAS], "o-", color="tab:blue")
    ax.axhline(reference, color="tab:green", linestyle="--", linewidth=1, label="true field")
    ax.set_xticks(xs, [f"{lam:g}" for lam in LAMBDAS])
    ax.set_xlabel("$\\lambda$")
    ax.set_title(title)
    ax.grid(alpha=0.3)
axes[1].set_yscale("log")
axes[0].legend()
fig.suptitle(f"[{PRESET}] one pair, gradient descent on the field")
fig.tight_layout()
plt.show()

# %% [markdown]
# What to look for in the pictures: the tendencies of the trade-off. The table and the line
# printed under it say what this run did, which need not follow them at every $\lambda$.
#
# - **$\lambda = 0$**: only MSE counts, so each displacement vector chases whatever intensity
#   lowers the error nearby. The grid can crumple and the Jacobian turn negative (the map folds:
#   the image is turned inside out there), and nothing pulls the field towards the true one. It
#   need not even win on MSE: without smoothness, each pixel can get stuck on the first intensity
#   that fits locally.
# - **Moderate $\lambda$**: neighbours must move together, which carries information from the
#   edges of structures into their flat inside; folding shrinks, and the field can come closer to
#   the truth.
# - **Large $\lambda$**: the field becomes so stiff that it can no longer follow the anatomy; the
#   grid is nearly regular and MSE climbs back towards the unregistered value.
#
# The networks this chapter trains take the course's $\lambda$ (`lstmcor.settings.LAMBDA`, printed
# above); the end of the training section puts the folding of the shipped networks next to this
# sweep, at the $\lambda$ they were trained with. MSE alone is not a measure of a good registration, which
# is why chapter {doc}`07_evaluation` also reports folding, SDlogJ and the error against the true
# field.
#
# :::{admonition} Exercise 6.2: a field that does not fold
# :class: exercise
# From the table of this run, which is the **smallest** $\lambda$ of the sweep whose field has no
# folded pixel at all? Put it in `answer_62` (one of `LAMBDAS`).
# :::

# %% tags=["exercise"] solution="ex6_2"
answer_62 = None   # one of LAMBDAS
# Stuck? Load the solution into a new cell with:  %load solutions/ex6_2.py

# %%
def check_ex62(answer):
    free = [lam for lam in LAMBDAS if results[lam]["folding"] == 0]
    assert answer is not None, "Set answer_62 to one of LAMBDAS."
    assert answer in LAMBDAS, f"{answer} is not one of the lambdas tried: {LAMBDAS}."
    assert results[answer]["folding"] == 0, (
        f"At lambda = {answer:g}, {results[answer]['folding']:.2f} % of the pixels fold: look at the folding column.")
    assert answer == min(free), f"lambda = {answer:g} does not fold, but a smaller lambda does not fold either."
    print(f"Correct: lambda = {answer:g} is the smallest of the sweep with no folding "
          f"(error against the truth {results[answer]['epe']:.2f} px).")


_ = check(check_ex62, answer_62, exercise="6.2")

# %% [markdown]
# :::{admonition} Exercise 6.3 (experiment): ten steps without, and with, smoothness
# :class: exercise
# What happens in the first few steps of a registration when nothing holds the field together?
# `descend(lam)` below starts from the zero field and takes ten steps of gradient descent on
# Eq. (23) for this pair (the gradient comes from `lstmcor.autodiff.value_and_grad`; each step is
# scaled so that the largest move is half a pixel). Run it for $\lambda = 0$ and $\lambda = 1$,
# and fill `table_63[lam] = (MSE, mean Dice of the warped labels, folding in % of pixels)`, with
# the labels warped by nearest neighbour. Which $\lambda$ matches the images better after ten steps,
# which the anatomy, and which folds?
# :::

# %%
from lstmcor.autodiff import value_and_grad
from lstmcor.metrics import mean_dice
from lstmcor.transform import spatial_transform

STEPS_63 = 10
DESCENDED = {}   # lambda -> field, filled by descend


def descend(lam, steps=STEPS_63, step_px=0.5):
    """Gradient descent on Eq. (23) from the zero field; each step moves the field by at most step_px."""
    moving4, fixed4 = moving[None, ..., None], fixed[None, ..., None]
    field = np.zeros((1, H, W, 2), "float32")
    for _ in range(steps):
        _, g = value_and_grad(lambda f: total_loss(fixed4, spatial_transform(moving4, f), f, lam), field)
        field = field - step_px * g / (np.abs(g).max() + 1e-12)
    DESCENDED[lam] = field[0]
    return field[0]


# %% tags=["exercise"] solution="ex6_3"
table_63 = {}   # {lam: (MSE, mean Dice, folding %)} for lam = 0.0 and 1.0
# Stuck? Load the solution into a new cell with:  %load solutions/ex6_3.py

# %%
def check_ex63(table):
    assert set(table) == {0.0, 1.0}, "Fill table_63 for lambda = 0.0 and lambda = 1.0."
    for lam, row in table.items():
        assert lam in DESCENDED, f"Run descend({lam}) first: its field is what the table describes."
        field = DESCENDED[lam]
        want = (mse_numpy(fixed, warp(moving, field)), mean_dice(ds.labels[F], warp(ds.labels[M], field, "nearest")),
                100 * folding_fraction(field))
        for name, got, expected in zip(("MSE", "mean Dice", "folding %"), row, want):
            assert np.isclose(got, expected, rtol=1e-4, atol=1e-9), (
                f"lambda = {lam:g}: your {name} is {got:.5f}, the field of descend({lam:g}) gives {expected:.5f}. "
                "Warp the labels with 'nearest', and give folding in per cent.")
    print("Correct: the table describes the two fields after "
          f"{STEPS_63} steps; lower MSE at lambda = {min(table, key=lambda k: table[k][0]):g}, "
          f"higher Dice at lambda = {max(table, key=lambda k: table[k][1]):g}.")


_ = check(check_ex63, table_63, exercise="6.3")

# %% [markdown]
# :::{admonition} Discussion
# :class: dropdown
# Ten steps are the very start of a registration, where the field is still small. With
# $\lambda = 0$ each vector follows only the intensity slope under it, so the field moves where the
# image has edges and nowhere else; with $\lambda = 1$ the smoothness term pulls neighbours along,
# spreading the motion into flat regions and damping the sharpest changes. Compare the two rows of
# the table: the MSE says which field matches the *images* better, the Dice which matches the
# *anatomy* better, and the folding whether the map is still one-to-one. When the lower MSE and the
# higher Dice fall on different rows, the image loss is being satisfied by something other than
# anatomy; when they agree, ten steps are too few for the difference to show, which is why the
# sweep above runs many more. The folding column says whether either map has already stopped being
# one-to-one after so few steps.
# :::

# %% [markdown]
# ## Training the two networks
#
# Now the real thing: both networks are trained **unsupervised** on pairs of different pseudo-subjects
# (same-brain and cross-brain) of the training split, with Eq. (23) at the course's $\lambda$, and Adam.
#
# :::{admonition} Our reading: the learning rate
# :class: note
# The paper gives Adam's learning rate as "10e-4", which read literally is $10^{-3}$; VoxelMorph,
# whose set-up the paper otherwise follows, trains with $10^{-4}$. We trained both networks with
# both rates and scored them on the validation pairs: $10^{-3}$ did better for both, so we take it
# (`lstmcor.settings.LEARNING_RATE`), with the batch size 8 and the 900 epochs of its Section 5 for
# the `paper` preset. The figures are in {doc}`../readings` ("Learning rate").
# :::
#
# `lstmcor.training.train` is the one code path behind both this notebook and the command line
# `lstmcor train`. It draws each batch of pairs from the seed, the epoch and the batch number
# alone, saves a checkpoint after every epoch and logs the losses to `log.csv`. The three presets:

# %%
for name, settings in PRESETS.items():
    pairs = settings["epochs"] * settings["steps_per_epoch"] * settings["batch_size"]
    print(f"{name:6s} {settings['epochs']:4d} epochs x {settings['steps_per_epoch']:3d} batches of "
          f"{settings['batch_size']} pairs = {pairs:,} training pairs seen")

# %% [markdown]
# :::{admonition} Training on a GPU kernel
# :class: tip
# Nothing in the package names a device: Keras puts the work on the first GPU its backend can
# see. What you need is a backend built with CUDA, chosen **before `keras` is first imported**
# (restart the kernel after changing it):
#
# - JAX: `pip install "jax[cuda12]"`, then in the first cell
#   `import os; os.environ["KERAS_BACKEND"] = "jax"`;
# - TensorFlow: `pip install "tensorflow[and-cuda]"` (Linux), and keep the default backend.
#
# `lstmcor.runtime.device_name()` must then print a `gpu:0`-like name (the trainer prints it too).
# Run this chapter with `PRESET = "paper"` (in JupyterLab edit the parameters cell; with
# papermill, `-p PRESET paper`), or from a terminal, which survives a closed browser tab:
# `lstmcor train --model lstmcor --preset paper --out runs/lstmcor-paper` (and
# `--model voxelmorph`). On a CPU, keep `quick`: it trains for minutes and shows the curves
# falling, but it is far from the paper's budget.
# :::

# %%
runs = {}
for model_name in ["voxelmorph", "lstmcor"]:
    # overwrite=True: this notebook trains anew each time it runs (a folder that holds a run is
    # otherwise refused, so that no run is lost by mistake)
    result = train(model_name, PRESET, data=ds, out=os.path.join(OUTPUT_DIR, model_name), seed=SEED, verbose=2,
                   overwrite=True)
    runs[model_name] = result
    print(f"[{PRESET}] {model_name}: {result.epochs_done} epochs in {result.seconds:.1f} s on {device_name()}, "
          f"final training loss {result.history['loss'][-1]:.5f}\n")

# %% [markdown]
# ## Did they learn to register?
#
# A falling loss is not yet a registration. We score the two networks we just trained on pairs of
# the **test** split (never seen in training) against doing nothing at all (the identity: the
# moving image as it is), with the Dice overlap of the tissue labels of chapter
# {doc}`00_registration_problem` and the share of pixels where the field folds. Chapter
# {doc}`07_evaluation` does this properly, with the shipped weights, a classical method and more
# measures.

# %%
from lstmcor.evaluation import evaluate  # noqa: E402

N_TEST_PAIRS = {"ci": 4, "quick": 32, "paper": 32}[PRESET]
scores = evaluate({("LSTM-COR" if k == "lstmcor" else "VoxelMorph"): r.model for k, r in runs.items()}, data=ds,
                  split="test", n_pairs=N_TEST_PAIRS, seed=SEED, timing_runs=3, progress=False).summary
identity_dice = scores["identity"]["dice_mean"]
steps = PRESETS[PRESET]["epochs"] * PRESETS[PRESET]["steps_per_epoch"]
print(f"[{PRESET}] {N_TEST_PAIRS} test pairs; identity (no registration): mean Dice {identity_dice:.3f}")
gains = {}
for key, label in [("voxelmorph", "VoxelMorph"), ("lstmcor", "LSTM-COR")]:
    s = scores[label]
    gains[label] = s["dice_mean"] - identity_dice
    print(f"[{PRESET}] {label:10s} trained {steps} steps in {runs[key].seconds:6.0f} s: mean Dice {s['dice_mean']:.3f} "
          f"({gains[label]:+.3f} over identity), folding {s['folding_mean']:.2f} % of pixels")

# %%
paper_steps = PRESETS["paper"]["epochs"] * PRESETS["paper"]["steps_per_epoch"]
pairs_seen = {name: p["epochs"] * p["steps_per_epoch"] * p["batch_size"] for name, p in PRESETS.items()}
learned = [label for label, gain in gains.items() if gain >= 0.05]
if PRESET == "ci":
    verdict = (f"At `ci` each network took {steps} steps: that tests the code, not the method, and any change of Dice "
               "here is noise. Run this chapter with `quick` to see the networks learn.")
elif len(learned) == len(gains):
    verdict = (f"Both networks learned to register in {steps} steps: mean Dice rose by "
               + " and ".join(f"{gains[k]:+.3f} ({k})" for k in gains) + " over doing nothing.")
else:
    verdict = (f"After {steps} steps, " + ", ".join(f"{k} {gains[k]:+.3f}" for k in gains)
               + " Dice over identity: " + (f"only {', '.join(learned)} learned visibly." if learned
                                            else "neither network has learned much yet."))
folds = {k: scores[k]["folding_mean"] for k in gains}
trade = (f"The `paper` preset trains {paper_steps:,} steps of {PRESETS['paper']['batch_size']} pairs: "
         f"{pairs_seen['paper']:,} pairs seen, {pairs_seen['paper'] // max(pairs_seen[PRESET], 1)} times as many as "
         f"`{PRESET}` ({pairs_seen[PRESET]:,}). "
         "What a short run may trade away shows in the folding column: "
         + ", ".join(f"{k} folds {v:.2f} %" for k, v in folds.items()) + " of the pixels")
trade += (" (a field that folds is not a plausible deformation; chapter 09 removes folding by construction)."
          if max(folds.values()) > 0.1 else ", little enough to ignore here.")
display(Markdown(f"**[{PRESET}]** {verdict} {trade}"))

# %% [markdown]
# ## Loss curves, as in Fig. 5
#
# The paper's Fig. 5 shows the training loss of both networks over 900 epochs, raw and smoothed
# with a moving average, because the raw curve of a batch-8 training is noisy. Here are the runs
# we just trained (with this preset's budget; at `ci` they are two points each and say nothing).

# %% mystnb={"figure": {"caption": "Training loss (Eq. 23) per epoch of the two runs of this notebook, raw (left) and with a moving average (right).", "name": "fig-06-loss-here"}}
logs_here = {("LSTM-COR" if k == "lstmcor" else "VoxelMorph"): read_log(r.out) for k, r in runs.items()}
window = max(1, min(5, PRESETS[PRESET]["epochs"] // 3))
loss_curves(logs_here, key="loss", window=window)
plt.show()

# %% [markdown]
# The course also ships weights trained for longer by the same trainer (chapter
# {doc}`07_evaluation` scores them). Their logs travel with them, next to a model card that says
# how they were trained.

# %%
shipped_logs = {}
for label, name in [("LSTM-COR", "lstmcor"), ("VoxelMorph", "voxelmorph")]:
    path = weights_dir() / f"{name}.log.csv"
    if path.is_file():
        shipped_logs[label] = read_log(path)
        log = shipped_logs[label]
        print(f"{label}: {len(log['loss'])} epochs in {path.name}; loss {log['loss'][0]:.5f} -> {log['loss'][-1]:.5f}, "
              f"mean over the run {np.mean(log['loss']):.5f}")
    else:
        print(f"{label}: no shipped log at {path}")
card = weights_dir() / "README.md"
if card.is_file():
    display(Markdown("**Model card of the shipped weights** (`data/weights/README.md`)\n\n" + card.read_text()))

# %% mystnb={"figure": {"caption": "Training loss of the shipped weights (the longer runs), raw and with a moving average, in the layout of the paper's Fig. 5.", "name": "fig-06-loss-shipped"}}
if shipped_logs:
    n_epochs = min(len(log["loss"]) for log in shipped_logs.values())
    loss_curves(shipped_logs, key="loss", window=max(1, min(25, n_epochs // 10)))
    plt.show()
else:
    print("No shipped logs found: see data/weights/README.md for how they are made.")

# %% [markdown]
# The paper's Table 1 also reports the **mean training loss over the whole run**: 0.002502 for
# LSTM-COR and 0.002766 for VoxelMorph. That number depends on the data, the intensity scale and
# the number of epochs, so only the order of the two is worth comparing across data sets.

# %%
paper_mean_loss = {"LSTM-COR": 0.002502, "VoxelMorph": 0.002766}
for label, log in shipped_logs.items():
    print(f"mean training loss, {label:10s}: shipped weights {np.mean(log['loss']):.6f}   paper {paper_mean_loss[label]:.6f}")
if len(shipped_logs) == 2:
    lower = min(shipped_logs, key=lambda k: np.mean(shipped_logs[k]["loss"]))
    print(f"Lower mean training loss on our data: {lower} (in the paper: LSTM-COR).")

# %% [markdown]
# ### The networks' $\lambda$ and their folds
#
# The $\lambda$ sweep above optimised one field directly. A network is trained with one $\lambda$
# (the shipped ones' is in their `.state.json`) and must predict fields for every pair with one set
# of weights, which also smooths what they predict. Do their fields fold at that weight? The cell below registers test
# pairs with the shipped networks, counts their folded pixels and writes the comparison with the
# sweep from the numbers.

# %%
from lstmcor.evaluation import load_weights, shipped_weights
from lstmcor.registration import register

N_FOLD_PAIRS = {"ci": 4, "quick": 16, "paper": 64}[PRESET]
fold_pairs = pair_indices(ds, "test", N_FOLD_PAIRS, SEED)
moving_batch = ds.images[[m for m, _ in fold_pairs]][..., None]
fixed_batch = ds.images[[f for _, f in fold_pairs]][..., None]
net_folding, net_lambda = {}, {}
for label, name in [("LSTM-COR", "lstmcor"), ("VoxelMorph", "voxelmorph")]:
    state = weights_dir() / f"{name}.state.json"
    net_lambda[label] = json.loads(state.read_text()).get("lambda") if state.is_file() else None
    flows = register(load_weights(shipped_weights(name)), moving_batch, fixed_batch)["flow"]
    net_folding[label] = np.array([100 * folding_fraction(flow) for flow in flows])
    print(f"[{PRESET}] shipped {label} (trained with lambda = {net_lambda[label]}): folding {net_folding[label].mean():.2f} % "
          f"of the pixels on average over {len(fold_pairs)} test pairs (from {net_folding[label].min():.2f} "
          f"to {net_folding[label].max():.2f} %)")
fold_free = [lam for lam in LAMBDAS if results[lam]["folding"] == 0]
trained_with = sorted({lam for lam in net_lambda.values() if lam is not None})
assert len(trained_with) == 1, f"the verdict below needs one lambda for both shipped networks, got {net_lambda}"
NET_LAMBDA = trained_with[0]
assert NET_LAMBDA in results, f"add the shipped networks' lambda {NET_LAMBDA:g} to the LAMBDAS of the sweep above"
direct = results[NET_LAMBDA]["folding"]
worst = max(net_folding, key=lambda k: net_folding[k].mean())
if all(net_folding[k].max() == 0 for k in net_folding) and direct == 0:
    verdict = (f"At lambda = {NET_LAMBDA:g} neither the shipped networks (on these pairs) nor the direct optimisation of "
               "this chapter's pair fold.")
elif all(net_folding[k].max() == 0 for k in net_folding):
    verdict = (f"Neither shipped network folds on these pairs at lambda = {NET_LAMBDA:g}, where the direct optimisation "
               f"of this chapter's pair folds {direct:.2f} % of its pixels: on these pairs the networks' own smoothing "
               "keeps their fields fold-free at this weight.")
else:
    who = "both shipped networks fold" if all(net_folding[k].max() > 0 for k in net_folding) else f"shipped {worst} folds"
    verdict = (f"Trained at lambda = {NET_LAMBDA:g}, {who} on these pairs ({worst} up to "
               f"{net_folding[worst].max():.2f} % of the pixels of a pair, {net_folding[worst].mean():.2f} % on average), "
               f"so a network's own smoothing does not keep its fields fold-free at this weight; the direct "
               f"optimisation of this chapter's pair folds {direct:.2f} % at the same lambda. Whether a larger lambda "
               "would remove the networks' folds" + (" as it does for the single field" if fold_free else "")
               + " is not measured here (chapter 9 trains fields that cannot fold).")
sweep_line = (f"In the sweep, the smallest lambda without folds was {min(fold_free):g}." if fold_free
              else "No lambda of the sweep gave a field without folds.")
display(Markdown(f"**[{PRESET}]** {verdict} {sweep_line}"))

# %% [markdown]
# ## Checkpoints: stop and resume
#
# A 900-epoch run will be interrupted sooner or later (a kernel restart, a time limit on a shared
# GPU). Each run folder holds everything needed to go on:

# %%
run_folder = runs["voxelmorph"].out
for path in sorted(run_folder.iterdir()):
    print(f"{path.name:18s} {path.stat().st_size / 1024:9.1f} kB")
print("\nstate.json:", (run_folder / "state.json").read_text())

# %% [markdown]
# `checkpoint.keras` holds the weights **and Adam's state** (its running moments), written after
# each epoch, and `state.json` the number of epochs done and the settings. `train(..., resume=True)`
# reloads both and continues with the next epoch. Because every batch is drawn from the seed, the
# epoch and the batch number alone, a resumed run sees exactly the pairs it would have seen.
# Let us check that claim with a small VoxelMorph run (ci sizes, whatever the preset): train one
# epoch and "crash", resume up to two epochs, and compare with a run of two epochs in one go.

# %%
small = dict(steps_per_epoch=2, batch_size=2, validation_steps=1, seed=SEED, verbose=0)
demo = os.path.join(OUTPUT_DIR, "resume_demo")
first = train("voxelmorph", "ci", data=ds, out=demo, epochs=1, overwrite=True, **small)
print("after the interruption:", json.loads((first.out / "state.json").read_text())["epochs_done"], "epoch done")
resumed = train("voxelmorph", "ci", data=ds, out=demo, epochs=2, resume=True, **small)
print("after resuming:        ", json.loads((resumed.out / "state.json").read_text())["epochs_done"], "epochs done")
print("log.csv:\n" + (resumed.out / "log.csv").read_text())
straight = train("voxelmorph", "ci", data=ds, out=os.path.join(OUTPUT_DIR, "straight_demo"), epochs=2,
                 overwrite=True, **small)
gap = max(float(np.max(np.abs(a - b))) for a, b in zip(resumed.model.get_weights(), straight.model.get_weights()))
print(f"[{PRESET}] largest weight difference, resumed against uninterrupted: {gap:.2e}")

# %% [markdown]
# The two runs end with the same weights: bit for bit with TensorFlow on a CPU (the gap printed
# is 0); GPU kernels may add floating-point noise. From a terminal the same is
# `lstmcor train --out <run folder> --resume` (the run's settings come from `state.json`; add a
# larger `--epochs` to train further).
#
# ## Summary
#
# - The loss of Eq. (23) is MSE (Eq. 21) plus $\lambda$ times the diffusion regulariser
#   (Eq. 22), the mean of squared forward differences of the field; the paper's sum is the same
#   up to a factor of about $4HW$.
# - $\lambda$ trades image match for a plausible field: at 0 nothing stops the field from folding
#   and wandering away from the truth even when the images match; too large and it cannot follow
#   the anatomy. MSE alone cannot tell you which field is right. Whether the shipped networks fold
#   at the $\lambda$ they were trained with is printed above from their fields.
# - `lstmcor.training.train` trains either network with Adam at $10^{-3}$ (the paper's "10e-4" read
#   literally, which measured better than $10^{-4}$), logs every epoch, checkpoints and resumes
#   exactly; the same code runs on a GPU when
#   the backend sees one.
#
# **Next:** {doc}`07_evaluation` scores the trained networks on the test pairs and checks the
# paper's Table 1, Fig. 6 and Tables 2-3 against our data.
