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
# # 5. The spatial transformer: warping an image by a field
#
# The flow head of {doc}`04_flow_head` predicts a displacement field $D$. The last stage of
# LSTM-COR {cite:p}`alsadi2022lstmcor` applies it: a *spatial transformer*
# {cite:p}`jaderberg2015stn` reads the moving image at the displaced positions with bilinear
# interpolation ([Eq. (19)](#eq-paper-19)) and returns the moved image
# ([Eq. (20)](#eq-paper-20)). Because the interpolation is differentiable in $D$, the whole network
# can be trained from image similarity alone. LSTM-COR puts a squeeze-and-excitation gate on the
# field first, the "weighted" transformer, which we take apart at the end.
#
# **Learning goals.** After this chapter you can
#
# - state the warping convention `moved(p) = moving(p + D(p))` and predict which way an image
#   moves;
# - write bilinear sampling from its four neighbours and check it against SciPy and the package;
# - explain why label maps must be warped with nearest-neighbour sampling, and score a warp with
#   Dice;
# - say what the SE gate on the field can and cannot do;
# - check the gradient of the warp with respect to the field by finite differences, and explain
#   why bilinear sampling makes learning possible where nearest-neighbour would not.

# %% tags=["parameters"]
PRESET = "quick"          # "ci" (seconds) | "quick" (minutes, laptop CPU) | "paper" (GPU)
DATA = "default"
SEED = 0
OUTPUT_DIR = "outputs/05_spatial_transformer"

# %% tags=["remove-cell"]
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
import logging

logging.getLogger("tensorflow").setLevel(logging.ERROR)

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from lstmcor.data import load_dataset
from lstmcor.exercises import check
from lstmcor.metrics import dice, jacobian_determinant, mean_dice
from lstmcor.models import build_lstmcor
from lstmcor.plots import label_rgb, plot_grid, plot_quiver
from lstmcor.transform import spatial_transform, warp

os.makedirs(OUTPUT_DIR, exist_ok=True)
rng = np.random.default_rng(SEED)
keras.utils.set_random_seed(SEED)
START = time.time()
ds = load_dataset(DATA)
H, W = ds.shape
GRID_N = {"ci": 7, "quick": 13, "paper": 21}[PRESET]        # resolution of the gate-scale map
same_brain = [(m, f) for m in ds.splits["test"] for f in ds.splits["test"]
              if m != f and ds.true_displacement(m, f) is not None]
moving_i, fixed_i = same_brain[SEED % len(same_brain)]
moving, fixed = ds.images[moving_i], ds.images[fixed_i]
true_flow = ds.true_displacement(moving_i, fixed_i)
print(f"[{PRESET}] test pair (moving {moving_i}, fixed {fixed_i}), same brain ({ds.base_of(moving_i)}): "
      f"the true field is known")

# %% [markdown]
# ## Which way does the image move?
#
# A field can be read two ways: "pixel $p$ of the moving image goes to $p + D(p)$" (push) or
# "pixel $p$ of the moved image is *fetched from* $p + D(p)$ in the moving image" (pull). The
# pull reading is the one a network can use, because every output pixel gets exactly one value
# (pushing leaves holes and collisions). The package, SciPy's `map_coordinates` and the Learn2Reg
# evaluation all use it:
#
# $$
# \text{moved}(p) = \text{moving}\big(p + D(p)\big), \qquad D(p) = (\text{rows}, \text{columns}) \text{ in pixels.}
# $$
#
# A consequence that surprises everyone once: a constant field $D = (+15, 0)$ fetches every pixel
# from 15 rows *below*, so the picture moves **up**.

# %% mystnb={"figure": {"caption": "A constant field of +15 rows: every pixel is fetched from 15 rows further down, so the brain moves up. The arrows show where each pixel reads from.", "name": "fig-05-convention"}}
shift = np.zeros((H, W, 2), "float32")
shift[..., 0] = 15.0
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
axes[0].imshow(moving, cmap="gray", vmin=0, vmax=1)
axes[0].axhline(H // 2, color="tab:orange", lw=1)
axes[0].set_title("moving")
plot_quiver(axes[1], shift, step=24, background=moving)
axes[1].set_title("D = (+15, 0): read from below")
axes[2].imshow(warp(moving, shift), cmap="gray", vmin=0, vmax=1)
axes[2].axhline(H // 2, color="tab:orange", lw=1)
axes[2].set_title("moved: content goes up")
for ax in axes:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Eq. (19): bilinear sampling
#
# The sample point $p + D(p)$ is almost never on the pixel grid. Jaderberg et al. write the value
# read there as a sum over *all* pixels $U_{nm}$ of the input (channel $c$), each weighted by a
# "tent" that is 1 at the sample point and falls linearly to 0 one pixel away, in each direction:
#
# (eq-paper-19)=
# $$
# V_i^c = \sum_n^H \sum_m^W U_{nm}^c \,\max\big(0, 1 - |x_i^s - m|\big)\,\max\big(0, 1 - |y_i^s - n|\big) \tag{19}
# $$
#
# where $(x_i^s, y_i^s)$ is where output pixel $i$ samples. Only the four pixels around the sample
# point have a non-zero tent, so the sum collapses to a blend of four values. With
# $y_0 = \lfloor y \rfloor$, $x_0 = \lfloor x \rfloor$, $d_y = y - y_0$, $d_x = x - x_0$:
#
# $$
# V = (1-d_y)(1-d_x)\,U_{y_0 x_0} + (1-d_y)\,d_x\,U_{y_0 x_0+1} + d_y(1-d_x)\,U_{y_0+1\, x_0} + d_y\,d_x\,U_{y_0+1\, x_0+1}.
# $$
#
# Each weight is the area of the rectangle *opposite* its corner ({numref}`fig-05-bilinear`).
# What happens outside the image the paper does not say; the package clamps the sample point to the
# image, so outside samples take the nearest border value (SciPy's `mode="nearest"`).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Left: the tent kernel max(0, 1 - |t|) of Eq. (19). Right: a sample point between four pixels; each pixel's weight is the area of the rectangle on the opposite side of the point.", "name": "fig-05-bilinear"}}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [1.2, 1]})
t = np.linspace(-2, 2, 401)
axes[0].plot(t, np.maximum(0, 1 - np.abs(t)), lw=2)
axes[0].set_xlabel("distance from the sample point [pixels]")
axes[0].set_ylabel("weight")
axes[0].set_title("tent kernel")
axes[0].grid(alpha=0.3)
py, px = 0.3, 0.65
corners = {(0, 0): "tab:blue", (0, 1): "tab:orange", (1, 0): "tab:green", (1, 1): "tab:red"}
for (cy, cx), colour in corners.items():
    weight = (1 - abs(py - cy)) * (1 - abs(px - cx))
    # the rectangle opposite corner (cy, cx): between the point and the far corner
    y_lo, y_hi = sorted((py, 1 - cy))
    x_lo, x_hi = sorted((px, 1 - cx))
    axes[1].add_patch(plt.Rectangle((x_lo, y_lo), x_hi - x_lo, y_hi - y_lo, color=colour, alpha=0.35))
    axes[1].plot(cx, cy, "o", color=colour, ms=12)
    axes[1].text(cx, cy + (-0.13 if cy == 0 else 0.2), f"w = {weight:.3f}",
                 ha="center", color=colour, fontsize=10, weight="bold")
axes[1].plot(px, py, "k*", ms=14)
axes[1].text(px + 0.03, py + 0.05, f"({py}, {px})", fontsize=9)
axes[1].set_xlim(-0.3, 1.3)
axes[1].set_ylim(1.35, -0.3)
axes[1].set_aspect("equal")
axes[1].set_xlabel("column")
axes[1].set_ylabel("row")
axes[1].set_title("four neighbours")
fig.tight_layout()
plt.show()


# %% [markdown]
# Now in NumPy, twice: the literal Eq. (19) (a sum over all pixels, fine for a tiny image) and the
# four-neighbour form (what one actually writes). Then both are checked against SciPy and the
# package.

# %%
def bilinear_sample(image, y, x):
    """Sample image [H, W] at float coordinates y, x (any shape) from the four neighbours."""
    h, w = image.shape
    y = np.clip(y, 0, h - 1)                        # outside samples: nearest border value
    x = np.clip(x, 0, w - 1)
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    dy, dx = y - y0, x - x0
    return ((1 - dy) * (1 - dx) * image[y0, x0] + (1 - dy) * dx * image[y0, x1]
            + dy * (1 - dx) * image[y1, x0] + dy * dx * image[y1, x1])


def warp_numpy(image, flow):
    """moved(p) = image(p + flow(p)), flow [H, W, 2] in pixels, channel 0 = rows."""
    rows, cols = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return bilinear_sample(image, rows + flow[..., 0], cols + flow[..., 1])


def warp_eq19(image, flow):
    """Eq. (19) literally: every output pixel is a tent-weighted sum over ALL input pixels."""
    h, w = image.shape
    rows, cols = np.mgrid[0:h, 0:w]
    ys = np.clip(rows + flow[..., 0], 0, h - 1).ravel()         # clamp first, as the package does
    xs = np.clip(cols + flow[..., 1], 0, w - 1).ravel()
    tent_y = np.maximum(0, 1 - np.abs(ys[:, None] - np.arange(h)[None, :]))   # [pixels, H]
    tent_x = np.maximum(0, 1 - np.abs(xs[:, None] - np.arange(w)[None, :]))   # [pixels, W]
    return np.einsum("pn,nm,pm->p", tent_y, image, tent_x).reshape(h, w)


tiny = rng.random((9, 11))
tiny_flow = rng.normal(0, 2.5, (9, 11, 2))
print(f"[{PRESET}] tiny image: Eq. (19) literally vs four neighbours: "
      f"max |difference| = {np.max(np.abs(warp_eq19(tiny, tiny_flow) - warp_numpy(tiny, tiny_flow))):.1e}")

# A smooth random field on a real brain, up to ~6 px, some samples falling outside the image.
smooth = np.stack([gaussian_filter(rng.normal(size=(H, W)), 12) for _ in range(2)], -1)
smooth = (6.0 * smooth / np.abs(smooth).max()).astype("float32")
ours = warp_numpy(moving.astype("float64"), smooth.astype("float64"))
rows, cols = np.mgrid[0:H, 0:W]
scipy_moved = map_coordinates(moving, [rows + smooth[..., 0], cols + smooth[..., 1]], order=1, mode="nearest")
package_moved = keras.ops.convert_to_numpy(spatial_transform(moving[None, ..., None], smooth[None]))[0, ..., 0]
print(f"[{PRESET}] brain, smooth field: NumPy vs scipy map_coordinates(order=1, mode='nearest'): "
      f"{np.max(np.abs(ours - scipy_moved)):.1e}")
print(f"[{PRESET}] brain, smooth field: NumPy vs lstmcor.transform.spatial_transform:           "
      f"{np.max(np.abs(ours - package_moved)):.1e}")
assert np.allclose(ours, scipy_moved, atol=1e-5) and np.allclose(ours, package_moved, atol=1e-5)

# %% [markdown]
# :::{admonition} Exercise 5.1: one point by hand
# :class: exercise
# A 2 × 2 image has the values `[[10, 20], [30, 40]]` (row 0 on top). What value does bilinear
# sampling give at row `y = 0.3`, column `x = 0.8`? Work it out on paper first (blend along the
# columns in each row, then between the rows), then type the number.
# :::

# %% tags=["exercise"] solution="ex5_1"
answer_51 = None   # a number
# Stuck? Load the solution into a new cell with:  %load solutions/ex5_1.py

# %% tags=["hide-input"]
def check_ex51(answer):
    assert answer is not None, "Type your number into answer_51."
    expected = float(map_coordinates(np.array([[10.0, 20.0], [30.0, 40.0]]), [[0.3], [0.8]], order=1)[0])
    if abs(float(answer) - expected) > 1e-6:
        swapped = float(map_coordinates(np.array([[10.0, 20.0], [30.0, 40.0]]), [[0.8], [0.3]], order=1)[0])
        hint = (" You swapped rows and columns: y is the row (first index)." if abs(float(answer) - swapped) < 1e-6
                else " Blend 10 and 20 with weights 0.2 and 0.8, the same for 30 and 40, then the two rows with 0.7 and 0.3.")
        raise AssertionError(f"{answer} is not right.{hint}")
    print(f"Correct: {expected:g}, the same as scipy.ndimage.map_coordinates(order=1).")


_ = check(check_ex51, answer_51, exercise="5.1")

# %% [markdown]
# ## Eq. (20): the moved image
#
# The paper writes the whole transformation as
#
# (eq-paper-20)=
# $$
# I_D = T(I_M) = \mathrm{STN}(D) \tag{20}
# $$
#
# the moved image $I_D$ is the moving image $I_M$ resampled by the transformer with the field $D$.
# The package's `SpatialTransformer` layer is called on `[moving, flow]`. Below, the moving image
# of our test pair is warped by its **true** displacement; the warped grid shows the same field as
# a deformed sheet: each grid line is drawn through the points where its pixels sample.

# %% mystnb={"figure": {"caption": "Warping by the true field of a same-brain pair: moving, moved, fixed, the differences to the fixed image before and after, and the deformed grid.", "name": "fig-05-true-warp"}}
moved = warp(moving, true_flow)
fig, axes = plt.subplots(1, 6, figsize=(16, 2.9))
for ax, image, title in zip(axes[:3], (moving, moved, fixed), ("moving", "moved by the true D", "fixed")):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=10)
limit = float(np.abs(moving - fixed).max())
for ax, diff, title in zip(axes[3:5], (moving - fixed, moved - fixed), ("moving - fixed", "moved - fixed")):
    ax.imshow(diff, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(f"{title} (MSE {np.mean(diff ** 2):.4f})", fontsize=9)
plot_grid(axes[5], true_flow, step=8)
axes[5].set_title("warped grid", fontsize=10)
for ax in axes:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Warping label maps: nearest neighbour, never linear
#
# To score a registration with Dice we warp the moving image's tissue labels (0 background,
# 1 CSF, 2 grey matter, 3 white matter) by the same field. Labels are *names*, not intensities:
# halfway between background (0) and grey matter (2), linear interpolation returns 1, "CSF",
# a tissue that is not there, and a 2.5 between grey and white matter means nothing. Rounding
# afterwards does not repair this: it turns the blend into a valid-looking label that may be
# wrong. Nearest neighbour sampling always returns one of the labels of the four neighbours.
# `lstmcor.transform.warp` does that for integer arrays by itself (`interpolation="nearest"`).

# %%
labels_m, labels_f = ds.labels[moving_i], ds.labels[fixed_i]
linear_labels = warp(labels_m.astype("float32"), true_flow, "linear")
nearest_labels = warp(labels_m, true_flow, "nearest")
mixed = np.abs(linear_labels - np.round(linear_labels)) > 1e-3
rounded = np.round(linear_labels).astype(int)
invented = rounded != nearest_labels
print(f"[{PRESET}] linear interpolation of labels: {mixed.sum()} pixels hold a non-integer 'label'; after rounding "
      f"{invented.sum()} pixels carry a label that differs from nearest neighbour")
names = ds.label_names
for name, warped in (("no warp", labels_m), ("nearest", nearest_labels), ("linear + round", rounded)):
    per_label = dice(labels_f, warped, [1, 2, 3])
    print(f"  Dice to fixed, {name:15s}: mean {mean_dice(labels_f, warped):.3f}  ("
          + ", ".join(f"{names[k] if k < len(names) else k}: {d:.3f}" for k, d in zip((1, 2, 3), per_label)) + ")")

# %% [markdown]
# Honestly, the *mean Dice* hardly tells the two apart on this pair (rounding can even come out a
# little higher, since between neighbouring numbers such as 2 and 3 it just moves the boundary by
# a fraction of a pixel). The real flaw is that the result of linear interpolation depends on how
# the tissues happen to be *numbered*. Renumber them (say CSF = 3, grey matter = 1, white matter
# = 2), warp, and translate back: nearest neighbour gives the identical map, linear + rounding a
# different one.

# %%
renumber = np.array([0, 3, 1, 2])              # old label -> new number
back = np.argsort(renumber)                    # new number -> old label
relabelled = back[np.round(warp(renumber[labels_m].astype("float32"), true_flow)).astype(int)]
nearest_relabelled = back[warp(renumber[labels_m], true_flow, "nearest")]
print(f"[{PRESET}] renumbered tissues: nearest changes {np.sum(nearest_relabelled != nearest_labels)} pixels, "
      f"linear + round changes {np.sum(relabelled != rounded)} pixels; mean Dice {mean_dice(labels_f, rounded):.3f} "
      f"-> {mean_dice(labels_f, relabelled):.3f}")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Labels warped by the true field. Linear interpolation produces in-between values along every boundary (middle left, zoom); rounding them invents tissue, e.g. a rim of CSF (1) between background (0) and grey matter (2) (red, right).", "name": "fig-05-labels"}}
zoom = (slice(20, 80), slice(40, 110))
fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
axes[0].imshow(label_rgb(nearest_labels))
axes[0].add_patch(plt.Rectangle((zoom[1].start, zoom[0].start), zoom[1].stop - zoom[1].start,
                                zoom[0].stop - zoom[0].start, fill=False, color="w", lw=1))
axes[0].set_title("nearest neighbour", fontsize=10)
im = axes[1].imshow(linear_labels[zoom], cmap="viridis", vmin=0, vmax=3)
fig.colorbar(im, ax=axes[1], fraction=0.046, ticks=[0, 1, 2, 3])
axes[1].set_title("linear (zoom): in-between values", fontsize=10)
axes[2].imshow(label_rgb(rounded[zoom]))
axes[2].set_title("linear, rounded (zoom)", fontsize=10)
overlay = np.repeat(moving[..., None] * 0.6, 3, -1)
overlay[invented] = [1, 0, 0]
axes[3].imshow(overlay)
axes[3].set_title(f"rounded != nearest ({invented.sum()} px)", fontsize=10)
for ax in axes:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# Even the true field does not give Dice = 1: the pseudo-subjects also differ a little through the
# slice plane, and a nearest-neighbour label map has staircase edges. That is the ceiling a
# registration of this pair can reach (chapter 7 compares models against it).
#
# :::{admonition} Exercise 5.2: warp labels, compute Dice
# :class: exercise
# Take the second same-brain test pair, `same_brain[1]`. Warp the moving image's label map by
# the true displacement of that pair with nearest-neighbour sampling, and compute the mean Dice
# against the fixed label map with `lstmcor.metrics.mean_dice`. Store it in `dice_52`.
# :::

# %% tags=["exercise"] solution="ex5_2"
m52, f52 = same_brain[1]
dice_52 = None   # your code
# Stuck? Load the solution into a new cell with:  %load solutions/ex5_2.py

# %% tags=["hide-input"]
def check_ex52(value):
    assert value is not None, "Compute dice_52."
    m, f = same_brain[1]
    field = ds.true_displacement(m, f)
    expected = mean_dice(ds.labels[f], warp(ds.labels[m], field, "nearest"))
    if abs(float(value) - expected) > 1e-9:
        candidates = {
            "you did not warp the labels": mean_dice(ds.labels[f], ds.labels[m]),
            "you used linear interpolation (then rounding)": mean_dice(
                ds.labels[f], np.round(warp(ds.labels[m].astype("float32"), field)).astype(int)),
            "you swapped moving and fixed": mean_dice(ds.labels[m], warp(ds.labels[f], field, "nearest")),
        }
        hint = next((why for why, v in candidates.items() if abs(float(value) - v) < 1e-9),
                    "use warp(labels, field, 'nearest') and mean_dice(fixed_labels, moved_labels)")
        raise AssertionError(f"{value:.4f} is not the expected Dice: {hint}.")
    print(f"Correct: mean Dice {expected:.3f} (before warping it was {mean_dice(ds.labels[f], ds.labels[m]):.3f}).")


_ = check(check_ex52, dice_52, exercise="5.2")


# %% [markdown]
# :::{admonition} Exercise 5.3 (experiment): what does half a pixel do to labels?
# :class: exercise
# What happens to a label map, and to the image, when the field is off by less than a pixel?
# Write `subpixel_scores(image, labels, t)`: warp `image` (bilinear) and `labels` (nearest) by the
# constant field that shifts by `t` pixels along the columns (every vector `(0, t)`), and return
# `(mean Dice of labels against the warped labels, MSE of image against the warped image)`. Run it
# on the fixed image of our pair for `t` from 0 to 1 in steps of 1/8. Below which shift do the
# labels not change at all, and what does the image error do over the same range?
# :::

# %% tags=["exercise"] solution="ex5_3"
def subpixel_scores(image, labels, t):
    ...  # your code: (mean Dice, MSE) after a constant shift of t columns


# Stuck? Load the solution into a new cell with:  %load solutions/ex5_3.py

# %% tags=["hide-input"]
def check_ex53(fn, image, labels):
    for t in (0.25, 0.5, 0.75, 1.0):
        got = fn(image, labels, t)
        assert got is not None and len(got) == 2, "Return a pair (mean Dice, MSE)."
        shifted_cols = np.clip(np.rint(np.arange(image.shape[1], dtype="float32") + np.float32(t)), 0,
                               image.shape[1] - 1).astype(int)
        want_dice = mean_dice(labels, labels[:, shifted_cols])
        want_mse = float(np.mean((image - map_coordinates(
            image, np.mgrid[0:image.shape[0], 0:image.shape[1]] + np.array([0.0, t])[:, None, None],
            order=1, mode="nearest")) ** 2))
        assert np.isclose(got[0], want_dice, atol=1e-9), (
            f"t = {t}: your Dice is {got[0]:.4f}, expected {want_dice:.4f}. Warp the labels with "
            "interpolation='nearest' and a field whose channel 1 (columns) is t everywhere.")
        assert np.isclose(got[1], want_mse, rtol=1e-4, atol=1e-9), (
            f"t = {t}: your MSE is {got[1]:.6f}, expected {want_mse:.6f}. Warp the image bilinearly by the same "
            "field and average the squared difference to the unwarped image.")
    print("Correct: Dice and MSE after a sub-pixel shift agree with a NumPy / SciPy reference.")


_ = check(check_ex53, subpixel_scores, fixed, ds.labels[fixed_i], exercise="5.3")

# %% [markdown]
# :::{admonition} Discussion
# :class: dropdown
# Nearest-neighbour sampling rounds every sample point to a whole pixel, so a shift below half a
# pixel fetches each label from where it was: the label map does not change at all and its Dice
# stays exactly 1 (the list printed above). At exactly half a pixel, the package rounds half to
# even, so every other column moves; from there on whole columns of labels move. The bilinear
# image, by contrast, changes from the first eighth of a pixel on, and its error grows smoothly with
# the shift. Two lessons: Dice cannot see errors of a field below half a pixel (and sees them as
# jumps above), while the image loss sees every fraction, which is what a network learns from; and
# a Dice difference between two methods smaller than what a one-pixel shift costs is a difference
# in sub-pixel detail.
# :::

# %% [markdown]
# ## Why bilinear sampling makes learning possible
#
# The network never sees a "correct" field; it only sees how similar the moved image is to the
# fixed one. To improve, it needs the derivative of that similarity with respect to every number
# of $D$. With bilinear sampling the moved value is a piecewise-linear function of the sample
# position, so the derivative exists almost everywhere and is simply the local image slope,
# measured between the neighbours:
#
# $$
# \frac{\partial V}{\partial y} = (1-d_x)\,(U_{y_0+1\,x_0} - U_{y_0 x_0}) + d_x\,(U_{y_0+1\,x_0+1} - U_{y_0\,x_0+1}),
# $$
#
# and likewise for $x$. Nearest-neighbour sampling is a staircase: flat almost everywhere, so its
# derivative is zero and gradient descent gets no signal. {numref}`fig-05-loss-slice` shows both
# along one direction: we add a uniform shift $t$ (columns) to the true field and record the error.

# %% mystnb={"figure": {"caption": "Error between moved and fixed image when the true field is shifted by t pixels along the columns. Bilinear: a smooth curve with a slope to follow. Nearest neighbour: the same overall shape, but made of flat steps (pixels jump only when their sample crosses a rounding boundary), so its derivative is zero almost everywhere.", "name": "fig-05-loss-slice"}}
ts = np.linspace(-2.5, 2.5, {"ci": 51, "quick": 201, "paper": 401}[PRESET])
curves = {}
for interpolation in ("linear", "nearest"):
    errors = []
    for t in ts:
        field = true_flow.copy()
        field[..., 1] += t
        errors.append(np.mean((warp(moving, field, interpolation) - fixed) ** 2))
    curves[interpolation] = np.array(errors)
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(ts, curves["linear"], label="bilinear")
ax.plot(ts, curves["nearest"], label="nearest neighbour", drawstyle="steps-mid")
ax.set_xlabel("extra column shift t [px]")
ax.set_ylabel("MSE(moved, fixed)")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()


# %% [markdown]
# A finite-difference check of the package's gradient: on a tiny random image and field (double
# precision, sample points kept away from whole pixels where the slope jumps), the derivative that
# automatic differentiation gives for $L = \sum_p R(p)\, \text{moved}(p)$ must match
# $\big(L(D + \varepsilon e) - L(D - \varepsilon e)\big) / 2\varepsilon$ for every entry of $D$.

# %%
from lstmcor.autodiff import gradient   # d fn / d x with the active backend's own autodiff

r = np.random.default_rng(SEED + 5)
img = r.random((1, 7, 8, 1))
base = r.integers(-2, 3, (1, 7, 8, 2)).astype("float64")
gd_flow = base + r.uniform(0.2, 0.8, base.shape)          # fractional parts away from 0 and 1
weights_r = r.normal(size=(1, 7, 8, 1))


def loss_of(flow, interpolation="linear"):
    return keras.ops.sum(keras.ops.multiply(spatial_transform(img, flow, interpolation), weights_r))


auto = gradient(loss_of, gd_flow)
eps = 1e-5
numeric = np.zeros_like(gd_flow)
for index in np.ndindex(gd_flow.shape):
    step = np.zeros_like(gd_flow)
    step[index] = eps
    plus = float(keras.ops.convert_to_numpy(loss_of(gd_flow + step)))
    minus = float(keras.ops.convert_to_numpy(loss_of(gd_flow - step)))
    numeric[index] = (plus - minus) / (2 * eps)
clamped = ((np.mgrid[0:7, 0:8][0] + gd_flow[0, ..., 0] < 0) | (np.mgrid[0:7, 0:8][0] + gd_flow[0, ..., 0] > 6)).sum()
print(f"[{PRESET}] bilinear: autodiff vs finite differences over {gd_flow.size} entries: "
      f"max |difference| = {np.max(np.abs(auto - numeric)):.1e} (gradient size {np.abs(auto).max():.2f})")
print(f"          ({clamped} row samples fall outside the image: clamped, so their row gradient is 0 in both)")
assert np.allclose(auto, numeric, atol=1e-6)
nearest_grad = gradient(lambda f: loss_of(f, "nearest"), gd_flow)
print(f"[{PRESET}] nearest neighbour: largest gradient entry = {np.abs(nearest_grad).max():.1f} (no signal to learn from)")

# %% [markdown]
# ## The weighted spatial transformer: an SE gate on the field
#
# The paper argues that the classic transformer samples every channel the same way and adds a
# squeeze-and-excitation block on the registration field, so that the network can weight the
# field's channels before warping; Eq. (20) itself still just writes $\mathrm{STN}(D)$. The field
# has two channels (rows, columns), so with the SE block of chapter 1:
#
# $$
# z = \tfrac{1}{HW}\sum_p D(p) \in \mathbb{R}^2, \qquad
# s = \sigma\big(W_2\, \delta(W_1 z)\big) \in (0, 1)^2, \qquad
# D'(p) = s \circ D(p),
# $$
#
# with $W_1$ of shape 1 × 2 and $W_2$ of shape 2 × 1 (hidden width $\max(1, 2 // 8) = 1$), and the
# moving image is warped by $D'$.
#
# :::{admonition} Our reading: one gate per field channel
# :class: note
# We read the "weighted" transformer as an SE block on the field $D$ that returns
# $D' = s \circ D$, one gate per field channel, before the bilinear warp; the model outputs the
# moved image and $D'$, and the smoothness loss is taken on $D'$. The reduction ratio is r = 8 as
# elsewhere, which would give a hidden width of 2 / 8; we use at least 1. See {doc}`../readings`.
# :::

# %%
model = build_lstmcor((H, W))
field_se = model.get_layer("field_se")
w1, w2 = (keras.ops.convert_to_numpy(w) for w in field_se.weights)
print("field_se weights:", [tuple(w.shape) for w in field_se.weights], "(W1 and W2, no biases: Eq. (4) has none)")
gates_layer = keras.ops.convert_to_numpy(field_se.gates(true_flow[None]))[0]
z = true_flow.mean(axis=(0, 1))
gates_numpy = 1 / (1 + np.exp(-(np.maximum(z @ w1, 0) @ w2)))
weighted = keras.ops.convert_to_numpy(field_se(true_flow[None]))[0]
print(f"[{PRESET}] untrained field SE on the true D: mean displacement z = {np.round(z, 2)}, gates s = {np.round(gates_layer, 3)}")
print(f"          NumPy gates match the layer: {np.allclose(gates_layer, gates_numpy, atol=1e-6)}; "
      f"D' = s * D: {np.allclose(weighted, gates_layer * true_flow, atol=1e-5)}")
if float(np.maximum(z @ w1, 0).max()) == 0.0:
    print("          the hidden ReLU unit is off for this field (W1 z <= 0), so both gates are exactly sigmoid(0) = 0.5")

# %% [markdown]
# What can two numbers in $(0, 1)$, the same for the whole image, do to a field? They can shrink
# the row component and the column component of the *entire* field, each by its own factor:
#
# - they **cannot** change the field locally: no pixel gets a different direction than the
#   others would, and a wrong field stays wrong in shape; every spatial detail comes from the
#   flow head;
# - they **cannot** enlarge it: the sigmoid keeps $s < 1$, so the flow head must predict $D / s$
#   to end up with $D$; a fresh model starts with $s \approx 0.5$;
# - the gates see only the mean displacement $z$ (two numbers, often near zero for a field that
#   moves parts of the brain in opposite directions), and with one hidden unit and no bias, if
#   $W_1 z \le 0$ the ReLU outputs 0 and both gates are exactly $\sigma(0) = 0.5$ whatever the
#   field;
# - the brain image has a single channel, so "weighting channels for the interpolation" can only
#   mean weighting the two *displacement* components, which is this global anisotropic scaling.
#
# So the gate is, at most, a learned global rescaling of the two directions, which the flow head
# could absorb. Whether it helps in practice is an empirical question; chapter 8 switches it off
# (`field_se=False`) and measures. The map below shows the error of warping by $s \circ D$ for the
# true field over a grid of gate pairs: the best value is at $s \approx (1, 1)$, where the field is
# left alone, and the region $s > 1$ (hatched) is out of the gate's reach.

# %% mystnb={"figure": {"caption": "MSE between the fixed image and the moving image warped by s * D (true D), for gate pairs (s_rows, s_cols). The white cross marks the untrained gate, the hatched area s > 1 cannot be reached by a sigmoid.", "name": "fig-05-gate-map"}}
scales = np.linspace(0.0, 1.5, GRID_N)
error_map = np.array([[np.mean((warp(moving, true_flow * np.array([sr, sc], "float32")) - fixed) ** 2)
                       for sc in scales] for sr in scales])
fig, ax = plt.subplots(figsize=(5.2, 4.2))
im = ax.imshow(error_map, origin="lower", extent=[scales[0], scales[-1], scales[0], scales[-1]], cmap="viridis")
fig.colorbar(im, ax=ax, label="MSE(moved, fixed)")
ax.add_patch(plt.Rectangle((1, 0), 0.5, 1.5, fill=False, hatch="//", color="w", lw=0))
ax.add_patch(plt.Rectangle((0, 1), 1, 0.5, fill=False, hatch="//", color="w", lw=0))
best = np.unravel_index(np.argmin(error_map), error_map.shape)
ax.plot(scales[best[1]], scales[best[0]], "r*", ms=14, label="lowest error")
ax.plot(gates_layer[1], gates_layer[0], "wx", ms=10, mew=2, label="untrained gate")
ax.set_xlabel("gate on the column component, $s_{cols}$")
ax.set_ylabel("gate on the row component, $s_{rows}$")
ax.legend(fontsize=8, loc="lower left")
fig.tight_layout()
plt.show()
print(f"[{PRESET}] lowest error at s = ({scales[best[0]]:.2f}, {scales[best[1]]:.2f}) on a {GRID_N} x {GRID_N} grid")


# %% [markdown]
# ## Explore: a smooth deformation of growing size
#
# The slider scales a smooth random field from nothing to large. Watch the grid: small fields bend
# it gently; large ones fold it (grid lines cross, the Jacobian determinant becomes negative), and
# the warped brain tears and duplicates structures. That is what the smoothness term of the loss
# in chapter 6 is there to prevent.

# %%
base_field = np.stack([gaussian_filter(np.random.default_rng(SEED + 1).normal(size=(H, W)), 10) for _ in range(2)], -1)
base_field = (base_field / np.linalg.norm(base_field, axis=-1).max()).astype("float32")   # longest vector = 1 px


def deformation_view(size=6.0):
    field = size * base_field
    det = jacobian_determinant(field)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    axes[0].imshow(moving, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("moving", fontsize=10)
    axes[1].imshow(warp(moving, field), cmap="gray", vmin=0, vmax=1)
    axes[1].set_title(f"warped, longest vector {size:.0f} px", fontsize=10)
    plot_grid(axes[2], field, step=6)
    axes[2].contour(det <= 0, levels=[0.5], colors="red", linewidths=1)
    axes[2].set_title(f"grid (folding: {100 * np.mean(det <= 0):.1f}% of pixels, red)", fontsize=10)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


# %% tags=["widget"]
import ipywidgets as widgets
from IPython.display import display

from lstmcor.plots import live_view

# Move the slider to draw (nothing is drawn while the cell runs, so batch runs never wait on it).
display(live_view(deformation_view, size=widgets.FloatSlider(6.0, min=0.0, max=30.0, step=1.0, description="size [px]")))

# %% mystnb={"figure": {"caption": "Static view of the widget: a smooth random deformation whose longest vector is 6 pixels.", "name": "fig-05-widget-static"}}
deformation_view(6.0)
plt.show()

# %% [markdown]
# And the same field at a few sizes side by side, with the fraction of folded pixels:

# %% mystnb={"figure": {"caption": "The same smooth field at growing size. Beyond a certain size the grid folds (red contours): the map is no longer one-to-one.", "name": "fig-05-sizes"}}
sizes = [2, 8, 16, 30]
fig, axes = plt.subplots(2, len(sizes), figsize=(3.2 * len(sizes), 6.2))
for col, size in enumerate(sizes):
    field = size * base_field
    det = jacobian_determinant(field)
    axes[0, col].imshow(warp(moving, field), cmap="gray", vmin=0, vmax=1)
    axes[0, col].set_title(f"{size} px", fontsize=10)
    axes[0, col].axis("off")
    plot_grid(axes[1, col], field, step=6)
    axes[1, col].contour(det <= 0, levels=[0.5], colors="red", linewidths=1)
    axes[1, col].set_title(f"folding {100 * np.mean(det <= 0):.1f}%", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# - The transformer pulls: `moved(p) = moving(p + D(p))`, channel 0 along the rows; a positive
#   row displacement moves the picture up.
# - Bilinear sampling ([Eq. (19)](#eq-paper-19)) is a tent-weighted sum that reduces to four
#   neighbours; our NumPy version equals `scipy.ndimage.map_coordinates(order=1, mode="nearest")`
#   and `lstmcor.transform.spatial_transform`. [Eq. (20)](#eq-paper-20) applies it to the moving
#   image.
# - Labels are warped with nearest neighbour: linear interpolation invents tissue. Dice after the
#   true warp is the ceiling for a pair.
# - Bilinear sampling has a useful derivative with respect to the field (checked by finite
#   differences); nearest neighbour has none, so it is used only for labels, never in training.
# - The SE gate on the field scales its two components globally by factors below 1; it cannot
#   reshape the field. Chapter 8 measures whether it helps.
#
# **Next:** {doc}`06_loss_and_training` puts a loss on the moved image and the field
# (Eq. (21)–(23)) and trains LSTM-COR and VoxelMorph.

# %% tags=["remove-cell"]
print(f"[{PRESET}] chapter 5 ran in {time.time() - START:.1f} s")
