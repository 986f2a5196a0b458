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
# # 0. The registration problem
#
# Two brain scans never line up by themselves: heads differ in shape, sit differently in the
# scanner, and a grey-matter fold in one person is a few millimetres away in the next. This
# chapter states the problem that the whole course solves, in the terms of the LSTM-COR paper
# {cite:p}`alsadi2022lstmcor` ([Eq. (1)](#eq-paper-1) and [Eq. (2)](#eq-paper-2)), opens the
# brain images we will register, measures how far apart a pair is before anything is done, and
# runs a classical iterative registration (SyN) as the reference every network must beat.
#
# **Learning goals.** After this chapter you can
#
# 1. say what the *moving*, *fixed* and *moved* images are, and what a displacement field is;
# 2. load the course's embedded data set and your own NIfTI images, and browse them;
# 3. measure the misalignment of a pair with MSE (intensities) and Dice (anatomical labels);
# 4. warp an image by a known deformation, and see the best score a 2D registration can reach;
# 5. run SyN from DIPY on a pair, and know how long a classical method takes per pair.

# %% tags=["parameters"]
PRESET = "quick"          # "ci" (seconds) | "quick" (minutes, laptop CPU) | "paper" (GPU)
DATA = "default"
SEED = 0
OUTPUT_DIR = "outputs/00_registration_problem"

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import lstmcor
from lstmcor import plots
from lstmcor.data import load_dataset, pair_indices
from lstmcor.exercises import check

os.makedirs(OUTPUT_DIR, exist_ok=True)
rng = np.random.default_rng(SEED)

# Sizes per preset: how many test pairs to measure, how many pairs SyN registers, and how hard.
N_PAIRS = {"ci": 16, "quick": 96, "paper": 480}[PRESET]
N_SYN = {"ci": 1, "quick": 4, "paper": 16}[PRESET]
SYN_ITERS = {"ci": (10, 5, 2), "quick": (50, 25, 10), "paper": (100, 50, 25)}[PRESET]
print(f"[{PRESET}] {N_PAIRS} test pairs measured, SyN on {N_SYN} pair(s) with level_iters={SYN_ITERS}")

# %% [markdown]
# ## Moving, fixed, moved
#
# Registration takes two images. The **moving** image $I_M$ is the one we are allowed to
# deform; the **fixed** image $I_F$ (also called target or reference) stays where it is.
# Registering means finding a spatial transformation $T$ which, applied to the moving image,
# produces a **moved** image $I_D$ that looks like the fixed one:
#
# (eq-paper-1)=
# $$
# I_D = T(I_M) \tag{1}
# $$
#
# In *deformable* registration $T$ may bend the image differently everywhere. We describe it by
# a **displacement field** $D$: at every pixel $p$ of the fixed image's grid, $D(p)$ is a small
# vector (in pixels) saying where in the moving image to look up the intensity,
#
# $$
# I_D(p) = I_M\big(p + D(p)\big).
# $$
#
# For a 2D image $D$ has two numbers per pixel; in this package a field is an array
# `[H, W, 2]` whose channel 0 is the displacement along the rows and channel 1 along the
# columns (the convention of `scipy.ndimage.map_coordinates`). Reading the moving image *at*
# shifted positions, rather than pushing its pixels forward, guarantees that every pixel of
# the moved image receives exactly one value.
#
# Which transformation is the right one? Without ground truth, "right" has to mean "makes the
# images agree". The paper writes the search for the best transformation as an optimisation
# over a dissimilarity $\mathcal{L}_{sim}$ between the fixed and the moved image:
#
# (eq-paper-2)=
# $$
# T_{optimal} = \operatorname{optimum}\big(\mathcal{L}_{sim}(I_F - I_D)\big)
#             = \operatorname{optimum}\big(\mathcal{L}(I_F - T(I_M))\big) \tag{2}
# $$
#
# A classical method, like SyN below, solves Eq. (2) afresh for every pair by iterating on the
# field itself. A learning method such as VoxelMorph {cite:p}`balakrishnan2019voxelmorph` or
# LSTM-COR instead trains a network that *predicts* $D$ from the two images in one forward
# pass; the optimisation then happens once, over the network's weights and many training pairs.
# Neither needs the true deformation: this is why the approach is called **unsupervised**.
#
# :::{admonition} Our reading
# :class: note
# The paper's "optimum" of an image difference is not a defined operation. We read Eq. (2) as:
# *minimise* the loss (the mean squared difference of Eq. (21) plus a smoothness penalty, see
# {doc}`06_loss_and_training`), for a classical method over the field of one pair, for a network
# over its weights averaged over training pairs. All readings of the course are listed in
# {doc}`../readings`.
# :::

# %% [markdown]
# ## Three choices: similarity, transformation model, optimisation
#
# Every registration method, classical or learned, is put together from three choices:
#
# 1. a **similarity measure** $\mathcal{L}_{sim}(I_F, I_D)$ that scores how well the moved image
#    agrees with the fixed one: the mean squared error in this course (Eq. (21), chapter
#    {doc}`06_loss_and_training`), local normalised cross-correlation in SyN and in chapter
#    {doc}`09_beyond_the_paper`, mutual information when the two images have different contrasts;
# 2. a **transformation model**: which $T$ are allowed and which are preferred. Rigid (a rotation
#    and a shift: 3 numbers in 2D), affine (6 numbers: also scaling and shear), or a dense
#    displacement field $D$ ($2HW$ numbers) kept plausible by a smoothness penalty
#    $\mathcal{L}_{smooth}(D)$ weighted by $\lambda$, possibly restricted to maps that cannot fold
#    (diffeomorphisms, chapter 9);
# 3. an **optimisation** that finds the best $T$ of the model for the measure.
#
# For the dense fields of this course, with $I_M \circ (\mathrm{Id} + D)$ the moved image
# $p \mapsto I_M\big(p + D(p)\big)$ of the last section, a classical method solves, for each pair
# anew,
#
# $$
# \hat D = \arg\min_{D}\; \mathcal{L}_{sim}\big(I_F,\, I_M \circ (\mathrm{Id} + D)\big)
#          + \lambda\, \mathcal{L}_{smooth}(D),
# $$
#
# iterating on the numbers of $D$ itself. A learning method keeps the same measure and the same
# model but moves the optimisation: a network $g_\theta$ maps the pair to its field,
# $D = g_\theta(I_M, I_F)$, and its weights are fitted once over a set $P$ of training pairs,
#
# $$
# \hat\theta = \arg\min_{\theta}\; \frac{1}{|P|} \sum_{(I_M, I_F) \in P}
#   \mathcal{L}_{sim}\big(I_F,\, I_M \circ (\mathrm{Id} + g_\theta(I_M, I_F))\big)
#   + \lambda\, \mathcal{L}_{smooth}\big(g_\theta(I_M, I_F)\big).
# $$
#
# The cost of optimising is paid once, in training, and *amortised* over every pair registered
# later with a single forward pass. That is the trade the course measures: time per pair,
# against what the network may give up in accuracy (chapter {doc}`07_evaluation`).
#
# **Affine pre-alignment.** In practice registration runs in stages: first a rigid or affine
# step removes the global differences (where the head sat in the scanner, its size and
# orientation), then a deformable step models the local ones. Deformable networks such as
# VoxelMorph and LSTM-COR are the second stage only: they assume that the affine step has been
# done, their fields are meant for local displacements of a few pixels, and their last
# convolution starts near zero, i.e. near the identity (chapter {doc}`04_flow_head`). The
# embedded data respect that assumption approximately: both brains come on grids of MNI space,
# so they were aligned to a common space before this course took them, and each pseudo-subject adds
# only a small affine of its own (rotation within ±3°, scale within ±4 %, shift within ±2 px,
# `data/README.md`) that nobody removes, so the networks and SyN (run here without an affine
# stage) must absorb that residual into the deformable field. Images of your own must be affinely
# aligned to each other, or to a common space such as MNI, before these networks can register
# them; DIPY's `AffineRegistration` {cite:p}`garyfallidis2014dipy` is one tool for that step.

# %% [markdown]
# ## The data: two real brains, many pseudo-subjects
#
# The paper trained on about a thousand 2D brain slices pooled from public cohorts that cannot
# be shipped with a course. Our embedded set is small (3.7 MB), loads in a blink and comes with
# something the paper never had: **known true deformations**.
#
# * It starts from **two real brains**: the MNI ICBM152 2009a template, an average of 152
#   young adults, and Colin27, a single person scanned 27 times
#   {cite:p}`fonov2011icbm152,holmes1998colin27`. Both are cut at the same coronal plane
#   (through the thalami, ventricles and hippocampi), 160 × 192 pixels of 1 mm, upright, with a
#   tissue label map: 1 CSF, 2 grey matter (GM), 3 white matter (WM).
# * Each of the 216 images is a **pseudo-subject**: one of the two brains bent by its own random
#   smooth, invertible deformation plus a small rotation/scale/shear, taken up to 1 mm off the
#   reference plane, with its own intensity bias, contrast and noise.
# * Because every deformation is stored, the exact in-plane correspondence between two
#   pseudo-subjects **of the same brain** is known (`true_displacement`). Two pseudo-subjects of
#   *different* brains are a genuine inter-subject pair, with no known answer.
#
# Be honest about what this means: a test image is a new *shape* of a brain the training set
# has already seen, not a new person. The cross-brain pairs are the test of generalisation.
# `data/README.md` in the repository describes how the set is built.

# %%
ds = lstmcor.load_default() if DATA == "default" else load_dataset(DATA)
print(f"{len(ds)} images of {ds.shape[0]} x {ds.shape[1]} pixels, {ds.images.dtype} in "
      f"[{ds.images.min():.1f}, {ds.images.max():.1f}]")
print("labels:", dict(enumerate(ds.label_names)))
print("split sizes:", {k: len(v) for k, v in ds.splits.items()})
print("first subjects:", ds.subjects[:4])

# %% mystnb={"figure": {"caption": "The two real brains (left) and six training pseudo-subjects made from them. Bottom row: tissue labels over the image (CSF blue, grey matter orange, white matter cream).", "name": "fig-00-montage"}}
base_images, base_labels = ds.meta["base_images"], ds.meta["base_labels"]
shown = list(ds.splits["train"][:6])
fig, axes = plt.subplots(2, 8, figsize=(16, 4.6))
columns = [("ICBM152 (base)", base_images[0], base_labels[0]), ("Colin27 (base)", base_images[1], base_labels[1])]
columns += [(f"{ds.subjects[i]}", ds.images[i], ds.labels[i]) for i in shown]
for k, (title, image, labels) in enumerate(columns):
    axes[0, k].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[1, k].imshow(plots.overlay_labels(image, labels, alpha=0.55))
    axes[0, k].set_title(title, fontsize=9, color="darkred" if k < 2 else "black")
for ax in axes.ravel():
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# Look at the outline of the ventricles (the dark butterfly in the middle) and at the cortex:
# pseudo-subjects of the same base brain share the anatomy but not its shape or position, and
# ICBM152 (blurred by averaging) and Colin27 (sharp, one person) differ in both anatomy and
# texture.
#
# ### Browse the subjects
#
# Move the slider to step through the images, tick the box to overlay the labels; the view is
# drawn as soon as you touch a control. (The book is static: run the notebook in JupyterLab to use
# the widget. The figure after it shows its default view.)

# %%
def show_subject(index=0, overlay=True):
    """One image, optionally with labels, and how far it is from its base brain."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6))
    image, labels = ds.images[index], ds.labels[index]
    axes[0].imshow(plots.overlay_labels(image, labels, 0.55) if overlay else image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"#{index}  {ds.subjects[index]}", fontsize=10)
    disp = ds.subject_displacement(index)
    if disp is not None:
        length = np.hypot(disp[..., 0], disp[..., 1])
        im = axes[1].imshow(length, cmap="magma", vmin=0, vmax=12)
        axes[1].contour(labels > 0, levels=[0.5], colors="white", linewidths=0.6)
        fig.colorbar(im, ax=axes[1], fraction=0.046, label="pixels")
        axes[1].set_title(f"displacement from {ds.base_of(index)}: mean {length[labels > 0].mean():.1f} px", fontsize=10)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    plt.show()


# %% tags=["widget"]
import ipywidgets as widgets
from IPython.display import display


from lstmcor.plots import live_view  # controls + a view that redraws on change

display(live_view(show_subject,
                  index=widgets.IntSlider(0, 0, len(ds) - 1, 1, description="subject"),
                  overlay=widgets.Checkbox(True, description="labels")))

# %% mystnb={"figure": {"caption": "Subject 0 with its labels (left) and the length of the deformation that made it from its base brain (right; white line: edge of the brain).", "name": "fig-00-browse"}}
show_subject(0, overlay=True)

# %% [markdown]
# ## Reading and writing images with nibabel
#
# Clinical images come as files, most often NIfTI (`.nii`, `.nii.gz`). Besides the voxel array,
# a NIfTI file stores a header (data type, voxel size) and an **affine**: a 4 × 4 matrix taking
# voxel indices to millimetres in scanner (world) space. We write one pair of our slices as
# NIfTI with [nibabel](https://nipy.org/nibabel/), read it back and look inside. A 2D slice is
# stored as a volume of depth 1; the affine here says "1 mm pixels, origin at the corner".

# %%
import nibabel as nib

moving_i, fixed_i = [int(i) for i in ds.splits["test"][:2]]
nifti_dir = os.path.join(OUTPUT_DIR, "nifti_pair")
os.makedirs(nifti_dir, exist_ok=True)
affine = np.diag([1.0, 1.0, 1.0, 1.0])          # 1 mm pixels
for role, i in (("moving", moving_i), ("fixed", fixed_i)):
    nib.save(nib.Nifti1Image(ds.images[i][..., None], affine), os.path.join(nifti_dir, f"{role}.nii.gz"))
    nib.save(nib.Nifti1Image(ds.labels[i][..., None].astype(np.int16), affine),
             os.path.join(nifti_dir, f"{role}_seg.nii.gz"))

img = nib.load(os.path.join(nifti_dir, "moving.nii.gz"))
print("files:", sorted(os.listdir(nifti_dir)))
print("shape:", img.shape, " dtype on disk:", img.get_data_dtype())
print("voxel size (mm):", img.header.get_zooms())
print("affine:\n", img.affine)
back = np.asarray(img.dataobj)[..., 0]
print("round trip exact:", np.array_equal(back, ds.images[moving_i]))

# %% [markdown]
# `lstmcor.data.load_dataset(folder)` reads such a folder for you: one image per file, labels
# (optional) as `<name>_seg.nii.gz` next to it. Every image is scaled to [0, 1], images and
# labels are padded to a size divisible by 16 (the network halves the size four times), and the
# subjects are split into train / validation / test. Here is a tiny folder of six subjects.

# %%
folder = os.path.join(OUTPUT_DIR, "my_nifti_folder")
os.makedirs(folder, exist_ok=True)
for i in ds.splits["test"][:6]:
    name = ds.subjects[int(i)]
    nib.save(nib.Nifti1Image(ds.images[i][..., None] * 1000.0, affine), os.path.join(folder, f"{name}.nii.gz"))
    nib.save(nib.Nifti1Image(ds.labels[i][..., None].astype(np.int16), affine),
             os.path.join(folder, f"{name}_seg.nii.gz"))
mine = load_dataset(folder, seed=SEED)
print(f"loaded {len(mine)} images of {mine.shape}, labels {mine.label_names} (a plain folder has no label names)")
print("splits:", {k: [mine.subjects[j] for j in v] for k, v in mine.splits.items()})
print("same pixels as the originals (after intensity scaling):",
      np.allclose(mine.images[0], ds.images[ds.subjects.index(mine.subjects[0])], atol=1e-5))

# %% [markdown]
# Your own data go the same way; `load_dataset` also reads the neurite-OASIS 2D release, PNG
# and `.npy` files, and single slices of 3D volumes (`slice_index=`, `axis=`).
#
# ## How far apart is a pair before registration?
#
# Two numbers describe a pair throughout the course.
#
# * **MSE**, the mean squared intensity difference over all pixels (the similarity of Eq. (21),
#   met again in {doc}`06_loss_and_training`). It is 0 for identical images and needs nothing but
#   the images, but two scans from different scanners differ in intensity even when aligned.
# * **Dice** of the anatomical labels: for one tissue with pixel sets $A$ (moving) and $B$
#   (fixed), $\mathrm{Dice} = 2|A \cap B| / (|A| + |B|)$, 1 for perfect overlap and 0 for none.
#   We average it over CSF, GM and WM. Labels are never given to the network; they only judge it.
#
# We draw test pairs (moving and fixed from different pseudo-subjects of the test split), and
# split them by whether both come from the same real brain.

# %%
pairs = pair_indices(ds, "test", N_PAIRS, seed=SEED)
records = []
for m, f in pairs:
    same = ds.base_of(m) == ds.base_of(f)
    row = {"m": m, "f": f, "same": same,
           "mse": float(np.mean((ds.images[m] - ds.images[f]) ** 2)),
           "dice": lstmcor.mean_dice(ds.labels[f], ds.labels[m])}
    if same:
        truth = ds.true_displacement(m, f)
        brain = ds.labels[f] > 0
        length = np.hypot(truth[..., 0], truth[..., 1])[brain]
        moved_labels = lstmcor.warp(ds.labels[m], truth, "nearest")
        row.update(true_mean=float(length.mean()), true_max=float(length.max()),
                   dice_true=lstmcor.mean_dice(ds.labels[f], moved_labels),
                   mse_true=float(np.mean((lstmcor.warp(ds.images[m], truth) - ds.images[f]) ** 2)))
    records.append(row)
same_rows = [r for r in records if r["same"]]
cross_rows = [r for r in records if not r["same"]]
for name, rows in (("same brain", same_rows), ("across brains", cross_rows)):
    print(f"[{PRESET}] {name:13s}: {len(rows):3d} pairs   MSE {np.mean([r['mse'] for r in rows]):.4f}   "
          f"Dice {np.mean([r['dice'] for r in rows]):.3f}")
print(f"[{PRESET}] true displacement within the brain, same-brain pairs: mean {np.mean([r['true_mean'] for r in same_rows]):.1f} px, "
      f"largest {np.max([r['true_max'] for r in same_rows]):.1f} px")

# %% mystnb={"figure": {"caption": "Before registration: Dice and MSE of test pairs, same-brain pairs against cross-brain pairs (left, middle), and how far the pixels of same-brain pairs truly have to move (right).", "name": "fig-00-before"}}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
colours = {"same brain": "tab:blue", "across brains": "tab:orange"}
for k, key in enumerate(("dice", "mse")):
    data = [[r[key] for r in same_rows], [r[key] for r in cross_rows]]
    parts = axes[k].violinplot(data, showmedians=True)
    for body, c in zip(parts["bodies"], colours.values()):
        body.set_facecolor(c)
    for j, values in enumerate(data):
        axes[k].scatter(np.full(len(values), j + 1) + rng.uniform(-0.08, 0.08, len(values)), values,
                        s=8, color="black", alpha=0.5)
    axes[k].set_xticks([1, 2], list(colours))
    axes[k].set_title({"dice": "mean Dice (CSF, GM, WM), higher is better", "mse": "MSE, lower is better"}[key], fontsize=10)
    axes[k].grid(alpha=0.3)
axes[2].hist([r["true_mean"] for r in same_rows], bins=12, color="tab:blue", alpha=0.7, label="mean over the brain")
axes[2].hist([r["true_max"] for r in same_rows], bins=12, color="tab:red", alpha=0.5, label="largest")
axes[2].set_xlabel("true displacement (pixels = mm)")
axes[2].set_ylabel("pairs")
axes[2].legend(fontsize=8)
axes[2].set_title("same-brain pairs: how far pixels move", fontsize=10)
fig.suptitle(f"[{PRESET}] {len(records)} test pairs, no registration", fontsize=11)
fig.tight_layout()
plt.show()

# %% [markdown]
# Before registration only about half of the tissue overlaps (Dice around 0.5), and pixels of
# same-brain pairs sit a few millimetres (up to more than ten) away from their partners. Cross-brain
# pairs are a little further apart in Dice, and their MSE also reflects the different
# appearance of the two brains.
#
# ## The ground truth: warping by the true displacement
#
# For a same-brain pair we *know* $D$. Warping the moving image with it shows what a perfect 2D
# registration achieves. The paper could not do this: on real patients nobody knows the true
# correspondence, which is exactly why it trains without it. We use it to tell how good "good"
# is.

# %%
m, f = same_rows[0]["m"], same_rows[0]["f"]
truth = ds.true_displacement(m, f)
moved_true = lstmcor.warp(ds.images[m], truth)
moved_true_labels = lstmcor.warp(ds.labels[m], truth, "nearest")
print(f"pair moving #{m} ({ds.subjects[m]}) -> fixed #{f} ({ds.subjects[f]})")
print(f"Dice before {lstmcor.mean_dice(ds.labels[f], ds.labels[m]):.3f}, "
      f"after the true field {lstmcor.mean_dice(ds.labels[f], moved_true_labels):.3f}")
print(f"[{PRESET}] over {len(same_rows)} same-brain pairs: Dice with the true field "
      f"{np.mean([r['dice_true'] for r in same_rows]):.3f} (before {np.mean([r['dice'] for r in same_rows]):.3f}); "
      f"MSE {np.mean([r['mse_true'] for r in same_rows]):.4f} (before {np.mean([r['mse'] for r in same_rows]):.4f})")

# %% mystnb={"figure": {"caption": "A same-brain pair warped by its true displacement. Top: moving, fixed, moved and the differences to the fixed image before and after. Bottom: the true field as arrows (every 8th pixel) and the labels before and after.", "name": "fig-00-truth"}}
fig, axes = plt.subplots(2, 5, figsize=(15, 6.2))
panels = [(ds.images[m], "moving"), (ds.images[f], "fixed"), (moved_true, "moved (true D)")]
for ax, (image, title) in zip(axes[0], panels):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
for ax, image, title in ((axes[0, 3], ds.images[m] - ds.images[f], "moving - fixed"),
                         (axes[0, 4], moved_true - ds.images[f], "moved - fixed")):
    ax.imshow(image, cmap="RdBu_r", vmin=-0.6, vmax=0.6)
    ax.set_title(title)
plots.plot_quiver(axes[1, 0], truth, step=8, background=ds.images[f])
axes[1, 0].set_title("true D (arrows)")
axes[1, 1].imshow(plots.flow_to_rgb(truth))
axes[1, 1].set_title("true D (colour wheel)")
inset = axes[1, 1].inset_axes([0.78, 0.0, 0.22, 0.22])
inset.imshow(plots.colour_wheel())
inset.axis("off")
axes[1, 2].imshow(plots.overlay_labels(ds.images[m], ds.labels[m], 0.55))
axes[1, 2].set_title("moving labels")
axes[1, 3].imshow(plots.overlay_labels(ds.images[f], ds.labels[f], 0.55))
axes[1, 3].set_title("fixed labels")
axes[1, 4].imshow(plots.overlay_labels(moved_true, moved_true_labels, 0.55))
axes[1, 4].set_title("moved labels (true D)")
for ax in axes.ravel():
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# Even the true field does not give Dice 1. Two pseudo-subjects may lie up to 2 mm apart
# *through* the slice, and no in-plane field can make up for anatomy that is simply not in the
# other slice; nearest-neighbour resampling of labels costs a little as well. Keep that ceiling
# (about 0.82 to 0.84 over same-brain pairs) in mind when you read Dice scores of networks later.
#
# ## A classical registration: SyN
#
# Symmetric normalisation (SyN) {cite:p}`avants2008syn` searches, for each pair, for a smooth
# invertible deformation that maximises the local cross-correlation of the two images. It was
# the classical baseline of VoxelMorph {cite:p}`balakrishnan2019voxelmorph`; we use DIPY's
# implementation {cite:p}`garyfallidis2014dipy` through `lstmcor.classical.syn_register`, which
# returns its field in our convention. SyN works coarse-to-fine: `level_iters` gives the
# iterations per resolution level, so the ci preset, which only has to prove that everything
# runs, uses a handful of iterations and gets a rougher answer than `quick`.

# %%
from lstmcor.classical import syn_register

syn_pairs = pairs[:N_SYN]
syn_rows = []
for m, f in syn_pairs:
    start = time.perf_counter()
    flow = syn_register(ds.images[m], ds.images[f], level_iters=SYN_ITERS)
    seconds = time.perf_counter() - start
    moved = lstmcor.warp(ds.images[m], flow)
    moved_labels = lstmcor.warp(ds.labels[m], flow, "nearest")
    syn_rows.append({"m": m, "f": f, "flow": flow, "moved": moved, "seconds": seconds,
                     "dice_before": lstmcor.mean_dice(ds.labels[f], ds.labels[m]),
                     "dice_after": lstmcor.mean_dice(ds.labels[f], moved_labels),
                     "mse_before": float(np.mean((ds.images[m] - ds.images[f]) ** 2)),
                     "mse_after": float(np.mean((moved - ds.images[f]) ** 2)),
                     "folding": 100 * lstmcor.folding_fraction(flow)})
print(f"[{PRESET}] SyN, level_iters={SYN_ITERS}, CPU")
print(" pair         brains   Dice before -> after   MSE before -> after   folds   seconds")
for r in syn_rows:
    kind = "same" if ds.base_of(r["m"]) == ds.base_of(r["f"]) else "cross"
    print(f" {r['m']:3d} -> {r['f']:3d}   {kind:5s}    {r['dice_before']:.3f} -> {r['dice_after']:.3f}"
          f"         {r['mse_before']:.4f} -> {r['mse_after']:.4f}      {r['folding']:.2f}%  {r['seconds']:6.2f}")
print(f"[{PRESET}] SyN time per pair: {np.mean([r['seconds'] for r in syn_rows]):.2f} s (mean of {len(syn_rows)})")

# %% mystnb={"figure": {"caption": "SyN on one test pair: moving, fixed, moved and the differences to the fixed image before and after.", "name": "fig-00-syn"}}
r = syn_rows[0]
fig = plots.registration_panels(ds.images[r["m"]], ds.images[r["f"]], r["moved"],
                                suptitle=f"[{PRESET}] SyN, Dice {r['dice_before']:.2f} -> {r['dice_after']:.2f}, "
                                         f"{r['seconds']:.2f} s")
plt.show()

# %% mystnb={"figure": {"caption": "The field SyN found for that pair: arrows, direction and length as colour, the warped grid and the Jacobian determinant (red: area grows, blue: it shrinks).", "name": "fig-00-syn-field"}}
fig = plots.field_summary(r["flow"], background=ds.images[r["f"]], suptitle="SyN displacement field")
plt.show()

# %% [markdown]
# SyN raises Dice clearly and keeps the map free of folds, at a few tenths of a second to a
# second per 160 × 192 pair on a CPU (more with more iterations; the table above gives this run's time). A network does the same in one forward pass of a few
# hundredths of a second, once it has been trained: that speed is the promise of VoxelMorph
# and of LSTM-COR, and {doc}`07_evaluation` checks whether the accuracy comes with it.
#
# ## The network of this course, on one page
#
# {numref}`fig-00-model` is the LSTM-COR network that chapters 1 to 5 build piece by piece, drawn
# from the package's model at the size of our images: a U-Net with squeeze-and-excitation on its
# skips and a funnel to its bottleneck (chapters 1 and 2) turns the stacked pair into 16 feature
# channels; Eq. (6) reads them as a sequence for a ConvLSTM (chapter 3); a flow head makes the
# displacement field (chapter 4); an SE block weighs the field and a spatial transformer warps the
# moving image with it (chapter 5). Each box gives a stage's output shape.

# %% mystnb={"figure": {"caption": "LSTM-COR, drawn from the package's model (lstmcor.plots.model_diagram): the SE U-Net with its funnel, Eq. (6), the ConvLSTM, the flow head (SE, depthwise, conv to the field), the field SE and the spatial transformer, with each stage's layer output shape (batch axis dropped).", "name": "fig-00-model"}}
fig = plots.model_diagram(lstmcor.build_lstmcor(input_shape=ds.shape))
plt.show()

# %% [markdown]
# ## Exercises
#
# :::{admonition} Exercise 0.1: Dice by hand
# :class: exercise
# Write `my_dice(a, b, label)` in NumPy: the Dice overlap of the pixels that carry `label` in two
# integer label maps `a` and `b`. Then compute `my_mean_dice(fixed_labels, moved_labels)`, the
# mean over the foreground labels present in the fixed map. The check compares with
# `lstmcor.dice` and `lstmcor.mean_dice` on the SyN pair above.
# :::

# %% tags=["exercise"] solution="ex0_1"
def my_dice(a, b, label):
    ...  # your code: 2 |A and B| / (|A| + |B|)


def my_mean_dice(fixed_labels, moved_labels):
    ...  # your code: mean of my_dice over the labels > 0 present in fixed_labels


# Stuck? Load the solution into a new cell with:  %load solutions/ex0_1.py

# %%
def check_ex01(my_dice, my_mean_dice):
    a = ds.labels[syn_rows[0]["f"]]
    b = lstmcor.warp(ds.labels[syn_rows[0]["m"]], syn_rows[0]["flow"], "nearest")
    for label in (1, 2, 3):
        got = my_dice(a, b, label)
        assert got is not None, "my_dice returns None: fill in the function."
        want = lstmcor.dice(a, b, [label])[0]
        assert np.isclose(got, want), (f"Dice of label {label}: you get {got:.4f}, lstmcor.dice gives {want:.4f}. "
                                       "Count pixels with the label in each map (|A|, |B|) and in both (|A and B|).")
    assert my_dice(a, a, 2) == 1.0, "A map against itself must give Dice 1."
    got, want = my_mean_dice(a, b), lstmcor.mean_dice(a, b)
    assert np.isclose(got, want), f"mean Dice: you get {got}, lstmcor.mean_dice gives {want}: average over labels 1, 2, 3."
    print(f"Correct: Dice per tissue (CSF, GM, WM) {[round(float(my_dice(a, b, v)), 3) for v in (1, 2, 3)]}, mean {got:.3f}.")


_ = check(check_ex01, my_dice, my_mean_dice, exercise="0.1")

# %% [markdown]
# :::{admonition} Exercise 0.2: MSE, a preview of Eq. (21)
# :class: exercise
# The similarity that both networks minimise is the mean, over all pixels $p$, of
# $(I_F(p) - I_D(p))^2$. Compute `answer_mse`, the MSE between the fixed image and the SyN-moved
# image of the first SyN pair, with NumPy only. The check compares it with the package's Keras
# loss `lstmcor.losses.mse`, which works on batches `[B, H, W, 1]`.
# :::

# %% tags=["exercise"] solution="ex0_2"
answer_mse = None  # your code: a float
# Stuck? Load the solution into a new cell with:  %load solutions/ex0_2.py

# %%
def check_ex02(answer):
    assert answer is not None, "Set answer_mse to a number."
    from lstmcor.losses import mse
    fixed = ds.images[syn_rows[0]["f"]][None, ..., None]
    moved = syn_rows[0]["moved"][None, ..., None]
    want = float(np.asarray(mse(fixed, moved))[0])
    assert np.isclose(answer, want, rtol=1e-4), (
        f"you get {answer:.6f}, the package {want:.6f}. Did you square the difference and average over "
        "every pixel (not only the brain)?")
    print(f"Correct: MSE(fixed, moved) = {answer:.5f}, against {syn_rows[0]['mse_before']:.5f} before registration.")


_ = check(check_ex02, answer_mse, exercise="0.2")

# %% [markdown]
# ## Summary
#
# * Registration deforms a **moving** image $I_M$ into a **moved** image $I_D = T(I_M)$ that
#   matches the **fixed** image $I_F$ ([Eq. (1)](#eq-paper-1)); the best $T$ is the one that
#   minimises a dissimilarity ([Eq. (2)](#eq-paper-2)). A deformable $T$ is a displacement field
#   $D$, read as $I_D(p) = I_M(p + D(p))$.
# * The embedded data set holds pseudo-subjects of two real brains; for pairs of the same brain
#   the true field is known, which lets us measure the best reachable Dice (about 0.82 to 0.84) and,
#   later, the error of a predicted field. NIfTI files are read with nibabel, and folders of them
#   with `load_dataset`.
# * Unregistered test pairs overlap with Dice about 0.5; SyN, a classical iterative method,
#   lifts that markedly (to about 0.75 to 0.85 with the `quick` settings) in under a second per
#   pair on a CPU.
#
# **Next:** the network that will predict $D$ in one pass is built from small parts. The first
# is the squeeze-and-excitation block, which lets a network weigh its feature channels:
# {doc}`01_squeeze_excitation`.
