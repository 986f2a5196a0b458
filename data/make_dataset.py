#!/usr/bin/env python
"""Rebuild the embedded data set ``data/lstmcor_brains2d.npz`` from its public sources.

    pip install -e '.[data]'          # nilearn, whose wheel ships the ICBM152 2009a template
    python data/make_dataset.py       # rebuild; fetches Debian's mricron-data if it is absent
    python data/make_dataset.py --check    # rebuild in memory and compare with the shipped file
    python data/make_dataset.py --montage  # also redraw data/montage.png

Sources (checked by version and sha256 below; see data/README.md for licences):
  * nilearn 0.14.1 wheel: MNI ICBM152 2009a nonlinear symmetric T1, GM and WM maps (1 mm).
  * Debian mricron-data 1.2.20211006+dfsg-4: Colin27 ``ch2bet.nii.gz`` (1 mm, MNI space).
    When absent, it is fetched with ``apt-get download mricron-data=<version>`` into the
    git-ignored ``data/_sources/`` and unpacked there with ``dpkg-deb -x`` (nothing installed).

The output is the same byte for byte on every run: fixed seeds, NumPy/SciPy only, and a zip
written with fixed time stamps (``np.savez_compressed`` would store the current time).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from lstmcor.data import (  # noqa: E402
    DEFAULT_FILENAME,
    subject_pullback,
    subject_transform,
    warp_array,
)
from lstmcor.metrics import jacobian_determinant, mean_dice  # noqa: E402

NILEARN_VERSION = "0.14.1"
MRICRON_DATA_VERSION = "1.2.20211006+dfsg-4"
SHA256 = {
    "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz":
        "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
    "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz":
        "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed",
    "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz":
        "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db",
    "ch2bet.nii.gz": "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1",
}
SOURCES_DIR = HERE / "_sources"
COLIN_REL = Path("usr/share/mricron/templates/ch2bet.nii.gz")

# ---- geometry: a coronal plane at MNI y = PLANE_Y mm, 1 mm pixels, brain upright.
# Row r is MNI z = Z_TOP - r (row 0 at the top of the head); column c is MNI x = c - X_CENTRE
# (patient's left on the left of the image, the neurological convention).
H, W = 160, 192
PLANE_Y = -20          # through the thalami and the hippocampi
Z_TOP, X_CENTRE = 84, 96
MAX_SHIFT = 1          # through-plane shift of a pseudo-subject, whole mm in [-1, 1] (see README)
# voxel index = world mm + offset, both grids are 1 mm RAS with integer origins
OFFSETS = {"icbm152": (98, 134, 72), "colin27": (90, 125, 71)}
BASES = ("icbm152", "colin27")

# ---- pseudo-subjects
SEED = 20261126
N_PER_SPLIT = {"train": 160, "val": 24, "test": 32}   # half from each brain
CONTROL_SPACING = 16   # px between B-spline control points of the velocity field
INTEGRATION_STEPS = 7  # scaling and squaring steps
VELOCITY_STD = 3.2     # px, std of the control values
IMAGE_SCALE = 255      # images stored as uint8, value / 255


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_file(path: Path) -> Path:
    got = sha256(path)
    want = SHA256[path.name]
    if got != want:
        raise RuntimeError(f"{path}: sha256 {got} differs from the expected {want}; the data set is only "
                         "reproducible from the exact source versions named in data/README.md")
    return path


def find_sources(fetch: bool = True) -> dict[str, Path]:
    """Paths of the four source files, fetching mricron-data when allowed and needed."""
    try:
        from importlib.metadata import version
        import nilearn
    except ImportError as exc:
        raise SystemExit("nilearn is not installed: `pip install -e '.[data]'` (it is only needed to "
                         "rebuild the data set)") from exc
    if version("nilearn") != NILEARN_VERSION:
        raise SystemExit(f"nilearn {version('nilearn')} is installed, the data set is built from "
                         f"{NILEARN_VERSION}: `pip install nilearn=={NILEARN_VERSION}`")
    ndir = Path(nilearn.__file__).parent / "datasets" / "data"
    out = {k: check_file(ndir / f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz")
           for k in ("t1", "gm", "wm")}
    colin = SOURCES_DIR / "mricron-data" / COLIN_REL
    if not colin.is_file() and (Path("/") / COLIN_REL).is_file():
        colin = Path("/") / COLIN_REL   # mricron-data installed system-wide
    if not colin.is_file():
        if not fetch:
            raise FileNotFoundError(f"{colin} is absent (Debian package mricron-data {MRICRON_DATA_VERSION})")
        SOURCES_DIR.mkdir(parents=True, exist_ok=True)
        print(f"fetching Debian mricron-data {MRICRON_DATA_VERSION} into {SOURCES_DIR} "
              "(apt-get download + dpkg-deb -x; nothing is installed)", flush=True)
        try:
            download = ["apt-get", "download", f"mricron-data={MRICRON_DATA_VERSION}"]
            if subprocess.run(download, cwd=SOURCES_DIR).returncode != 0 and os.geteuid() == 0:
                # a fresh machine may have no package lists yet: read them once, then try again
                subprocess.run(["apt-get", "update", "-qq"], check=True)
                subprocess.run(download, cwd=SOURCES_DIR, check=True)
            elif not sorted(SOURCES_DIR.glob("mricron-data_*.deb")):
                raise subprocess.CalledProcessError(1, download)
            deb = sorted(SOURCES_DIR.glob("mricron-data_*.deb"))[-1]
            subprocess.run(["dpkg-deb", "-x", str(deb), str(SOURCES_DIR / "mricron-data")], check=True)
        except (OSError, subprocess.CalledProcessError, IndexError) as exc:
            raise FileNotFoundError(
                f"could not fetch mricron-data ({exc}); on Debian/Ubuntu run `apt-get update` first, elsewhere "
                f"download mricron-data_{MRICRON_DATA_VERSION}_all.deb and unpack it with "
                f"`dpkg-deb -x <deb> {SOURCES_DIR / 'mricron-data'}`") from exc
        colin = SOURCES_DIR / "mricron-data" / COLIN_REL
    out["colin"] = check_file(colin)
    return out


def load_volume(path: Path) -> np.ndarray:
    import nibabel as nib
    img = nib.load(str(path))
    if nib.aff2axcodes(img.affine) != ("R", "A", "S"):
        raise SystemExit(f"{path}: expected a RAS volume")
    return np.asarray(img.dataobj).astype(np.float64)


def coronal(vol: np.ndarray, base: str, y: int) -> np.ndarray:
    """The 160 x 192 coronal plane at MNI y (mm), zero outside the volume."""
    oi, oj, ok = OFFSETS[base]
    out = np.zeros((H, W), np.float64)
    i = np.arange(W) - X_CENTRE + oi
    k = Z_TOP - np.arange(H) + ok
    vi = (i >= 0) & (i < vol.shape[0])
    vk = (k >= 0) & (k < vol.shape[2])
    out[np.ix_(vk, vi)] = vol[i[vi]][:, y + oj][:, k[vk]].T
    return out


def largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return ndimage.binary_fill_holes(mask)
    sizes = ndimage.sum(mask, lab, index=np.arange(1, n + 1))
    return ndimage.binary_fill_holes(lab == 1 + int(np.argmax(sizes)))


def build_bases(src: dict[str, Path]):
    """Per brain and per through-plane shift: image in [0, 1] and labels 0 bg / 1 CSF / 2 GM / 3 WM."""
    t1, gm, wm = (load_volume(src[k]) for k in ("t1", "gm", "wm"))
    colin = load_volume(src["colin"])
    ys = list(range(PLANE_Y - MAX_SHIFT, PLANE_Y + MAX_SHIFT + 1))

    # ICBM152: tissue = argmax of (CSF, GM, WM) probabilities inside the skull-stripped brain,
    # with CSF = 1 - GM - WM (nilearn ships no CSF map; inside the brain mask the rest is CSF).
    icbm_img, icbm_lab, priors = [], [], []
    for y in ys:
        img = coronal(t1, "icbm152", y)
        mask = largest_component(img > 0)
        g, w = coronal(gm, "icbm152", y) / 255.0, coronal(wm, "icbm152", y) / 255.0
        c = np.clip(1.0 - g - w, 0.0, 1.0)
        prob = np.stack([c, g, w]) * mask
        lab = np.where(mask, 1 + np.argmax(prob, axis=0), 0)
        icbm_img.append(img * mask)
        icbm_lab.append(lab)
        # the same maps on Colin's plane (same MNI coordinates) serve as spatial priors there
        priors.append(prob)

    # Colin27: a 3-class Gaussian mixture of T1 intensity with spatial priors from ICBM152
    # (both are in MNI space), fitted by EM on the brain pixels of all shifted planes together.
    colin_img = [coronal(colin, "colin27", y) for y in ys]
    masks = [largest_component(im > 0) for im in colin_img]
    x = np.concatenate([im[m] for im, m in zip(colin_img, masks)])
    pri = np.concatenate([np.stack([ndimage.gaussian_filter(p[k], 1.5) for k in range(3)])[:, m]
                          for p, m in zip(priors, masks)], axis=1)
    pri = 0.7 * pri / np.maximum(pri.sum(0, keepdims=True), 1e-6) + 0.3 / 3.0
    resp = pri.copy()
    for _ in range(30):
        nk = resp.sum(1)
        mu = (resp * x).sum(1) / nk
        var = (resp * (x - mu[:, None]) ** 2).sum(1) / nk + 1e-3
        loglik = -0.5 * (x - mu[:, None]) ** 2 / var[:, None] - 0.5 * np.log(var[:, None])
        post = pri * np.exp(loglik - loglik.max(0, keepdims=True))
        resp = post / post.sum(0, keepdims=True)
    order = np.argsort(mu)  # T1: CSF < GM < WM
    colin_lab, pos = [], 0
    for im, m in zip(colin_img, masks):
        n = int(m.sum())
        post = np.zeros((3, H, W))
        post[:, m] = resp[:, pos:pos + n]
        pos += n
        # a light spatial smoothing of the posteriors (sigma 0.7 px) removes isolated pixels
        post = np.stack([ndimage.gaussian_filter(q, 0.7) for q in post])
        cls = np.argmax(post[:, m], axis=0)
        lab = np.zeros((H, W), np.int64)
        lab[m] = 1 + np.argsort(order)[cls]
        colin_lab.append(lab)
    gmm = {"means": [float(mu[o]) for o in order], "stds": [float(np.sqrt(var[o])) for o in order]}
    colin_img = [im * m for im, m in zip(colin_img, masks)]

    def scale(imgs):
        ref = np.percentile(np.concatenate([im[im > 0] for im in imgs]), 99.5)
        return [np.clip(im / ref, 0.0, 1.0) for im in imgs]

    return {"icbm152": (np.stack(scale(icbm_img)), np.stack(icbm_lab)),
            "colin27": (np.stack(scale(colin_img)), np.stack(colin_lab)),
            "shifts": ys, "colin_gmm": gmm}


def random_affine(rng) -> np.ndarray:
    """Small affine about the image centre, 2 x 3 in (row, col) pixel coordinates."""
    theta = np.deg2rad(rng.uniform(-3.0, 3.0))
    scale = np.exp(rng.uniform(-0.04, 0.04, size=2))
    shear = rng.uniform(-0.03, 0.03)
    t = rng.uniform(-2.0, 2.0, size=2)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    m = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scale)
    c = np.array([(H - 1) / 2.0, (W - 1) / 2.0])
    return np.concatenate([m, (c - m @ c + t)[:, None]], axis=1)


def bias_field(rng) -> np.ndarray:
    r = np.linspace(-1, 1, H)[:, None]
    c = np.linspace(-1, 1, W)[None, :]
    a = rng.uniform(-0.12, 0.12, size=5)
    return np.exp(a[0] * r + a[1] * c + a[2] * r * r + a[3] * c * c + a[4] * r * c)


def make_subject(k: int, base_img, base_lab, shifts):
    """One pseudo-subject from its own seed: returns image, labels and its parameters."""
    rng = np.random.default_rng([SEED, k])
    shift = int(rng.integers(-MAX_SHIFT, MAX_SHIFT + 1))
    plane = shifts.index(PLANE_Y + shift)
    gh, gw = H // CONTROL_SPACING + 3, W // CONTROL_SPACING + 3
    for _attempt in range(20):   # redraw in the (unseen so far) case of a folding map
        velocity = rng.normal(0.0, VELOCITY_STD, size=(2, gh, gw)).astype(np.float32)
        affine = random_affine(rng)
        u, winv = subject_transform(velocity, affine, (H, W), CONTROL_SPACING, INTEGRATION_STEPS)
        psi = subject_pullback(u, affine)
        grid = np.mgrid[0:H, 0:W].astype(np.float64)
        jac = jacobian_determinant(np.moveaxis(psi - grid, 0, -1))
        if jac.min() > 0 and jacobian_determinant(np.moveaxis(winv, 0, -1)).min() > 0:
            break
    else:
        raise RuntimeError(f"subject {k}: no folding-free deformation in 20 draws")
    img = ndimage.map_coordinates(base_img[plane], psi, order=1, mode="constant", cval=0.0)
    lab = ndimage.map_coordinates(base_lab[plane], psi, order=0, mode="constant", cval=0)
    # appearance: smooth bias field, gamma, Gaussian noise inside the head (background stays 0,
    # as in a skull-stripped scan), then rescaled so that the brightest pixel is 1
    img = img * bias_field(rng)
    img = np.clip(img, 0.0, None) ** np.exp(rng.uniform(np.log(0.8), np.log(1.25)))
    head = ndimage.binary_dilation(lab > 0, iterations=1)
    img = np.where(head, img + rng.normal(0.0, rng.uniform(0.01, 0.03), size=img.shape), 0.0)
    img = np.clip(img, 0.0, None)
    img = img / np.percentile(img[head], 99.9)
    img = np.clip(img, 0.0, 1.0)
    q = np.rint(img * IMAGE_SCALE).astype(np.uint8)
    return q, lab.astype(np.uint8), velocity, affine, shift, jac.min()


def build(src: dict[str, Path], verbose: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    t0 = time.perf_counter()
    bases = build_bases(src)
    names, images, labels, velocity, affine, base_id, shift = [], [], [], [], [], [], []
    splits = {}
    k = 0
    min_jac = np.inf
    for split, n in N_PER_SPLIT.items():
        idx = []
        for j in range(n):
            b = j % 2
            img, lab, v, a, s, mj = make_subject(k, *bases[BASES[b]], bases["shifts"])
            names.append(f"{split}{j:03d}-{BASES[b]}")
            images.append(img), labels.append(lab), velocity.append(v), affine.append(a)
            base_id.append(b), shift.append(s)
            min_jac = min(min_jac, mj)
            idx.append(k)
            k += 1
        splits[split] = np.array(idx, np.int16)
    centre = bases["shifts"].index(PLANE_Y)
    meta = {
        "format": 1,
        "description": "coronal 160x192 slices of two real brains (MNI ICBM152 2009a sym, Colin27) "
                       "as pseudo-subjects with known smooth deformations",
        "image_scale": IMAGE_SCALE,
        "plane_mni_y_mm": PLANE_Y,
        "pixel_mm": 1.0,
        "orientation": "rows: superior to inferior (row 0 at the top); columns: patient left to right",
        "control_spacing": CONTROL_SPACING,
        "integration_steps": INTEGRATION_STEPS,
        "velocity_std_px": VELOCITY_STD,
        "seed": SEED,
        "split_sizes": {s: int(n) for s, n in N_PER_SPLIT.items()},
        "sources": {"nilearn": NILEARN_VERSION, "mricron-data": MRICRON_DATA_VERSION, "sha256": SHA256},
        # rounded so that the last bits of NumPy's transcendental functions, which differ between
        # NumPy versions and CPUs, do not reach the file (the rebuild stays byte for byte)
        "colin_gmm": {k: [float(f"{x:.10g}") for x in v] for k, v in bases["colin_gmm"].items()},
        "transform": "subject(x) = base(phi(A x)), phi = exp(v); see lstmcor.data.subject_transform",
    }
    arrays = {
        "images": np.stack(images),
        "labels": np.stack(labels),
        "subjects": np.array(names),
        "label_names": np.array(["background", "CSF", "grey matter", "white matter"]),
        "split_train": splits["train"],
        "split_val": splits["val"],
        "split_test": splits["test"],
        "base": np.array(base_id, np.int8),
        "base_names": np.array(BASES),
        "plane_shift": np.array(shift, np.int8),
        "velocity": np.stack(velocity),
        "affine": np.round(np.stack(affine).astype(np.float64), 12),  # see colin_gmm above
        "base_images": np.stack([np.rint(bases[b][0][centre] * IMAGE_SCALE).astype(np.uint8) for b in BASES]),
        "base_labels": np.stack([bases[b][1][centre].astype(np.uint8) for b in BASES]),
        "meta_json": np.array(json.dumps(meta, sort_keys=True)),
    }
    if verbose:
        print(f"built {len(names)} pseudo-subjects in {time.perf_counter() - t0:.1f} s "
              f"(min Jacobian determinant {min_jac:.3f})", flush=True)
    return arrays, meta


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz that np.load reads, with fixed zip time stamps so that it is reproducible."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            body = io.BytesIO()
            np.lib.format.write_array(body, np.asarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, body.getvalue(), compresslevel=9)
    path.write_bytes(buf.getvalue())


def statistics(arrays) -> dict:
    """Deformation sizes and label overlap, as quoted in data/README.md."""
    from lstmcor.data import set_from_npz
    ds = set_from_npz(arrays)
    sub_mean, sub_max = [], []
    for i in range(len(ds)):
        d = np.linalg.norm(ds.subject_displacement(i), axis=-1)
        brain = ds.labels[i] > 0
        sub_mean.append(d[brain].mean())
        sub_max.append(d[brain].max())
    test = ds.splits["test"]
    same, cross = [], []
    for m in test:
        for f in test:
            if m == f:
                continue
            (same if ds.base_of(m) == ds.base_of(f) else cross).append((int(m), int(f)))
    pair_mean, pair_max, dice_before, dice_true, min_jac, dice_cross = [], [], [], [], [], []
    for m, f in same:
        d = ds.true_displacement(m, f)
        mag = np.linalg.norm(d, axis=-1)
        brain = ds.labels[f] > 0
        pair_mean.append(mag[brain].mean())
        pair_max.append(mag[brain].max())
        min_jac.append(jacobian_determinant(d).min())
        dice_before.append(mean_dice(ds.labels[f], ds.labels[m]))
        dice_true.append(mean_dice(ds.labels[f], warp_array(ds.labels[m], d, order=0)))
    for m, f in cross:
        dice_cross.append(mean_dice(ds.labels[f], ds.labels[m]))
    base_dice = mean_dice(ds.meta["base_labels"][1], ds.meta["base_labels"][0])
    return {
        "subject_vs_base_mean_px": float(np.mean(sub_mean)),
        "subject_vs_base_max_px": float(np.max(sub_max)),
        "test_pairs_same_brain": len(same),
        "test_pairs_cross_brain": len(cross),
        "pair_mean_px": float(np.mean(pair_mean)),
        "pair_max_px": float(np.max(pair_max)),
        "pair_mean_of_max_px": float(np.mean(pair_max)),
        "pair_min_jacobian": float(np.min(min_jac)),
        "dice_before_same_brain": float(np.mean(dice_before)),
        "dice_true_field_same_brain": float(np.mean(dice_true)),
        "dice_before_cross_brain": float(np.mean(dice_cross)),
        "dice_icbm_vs_colin_bases": base_dice,
        "label_fractions": {n: float((ds.labels == v).mean()) for v, n in enumerate(ds.label_names)},
    }


def montage(arrays, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap([(0, 0, 0, 0), (0.2, 0.5, 1.0, 0.55), (1.0, 0.3, 0.2, 0.55), (1.0, 0.9, 0.2, 0.55)])
    imgs = arrays["images"].astype(np.float32) / IMAGE_SCALE
    labs = arrays["labels"]
    base_i = arrays["base_images"].astype(np.float32) / IMAGE_SCALE
    base_l = arrays["base_labels"]
    picks = [int(i) for i in arrays["split_train"][:6]]
    cols = 2 + len(picks)
    fig, ax = plt.subplots(2, cols, figsize=(1.9 * cols, 3.9))
    panels = [(base_i[0], base_l[0], "ICBM152 base"), (base_i[1], base_l[1], "Colin27 base")]
    panels += [(imgs[i], labs[i], str(arrays["subjects"][i])) for i in picks]
    for c, (im, lab, title) in enumerate(panels):
        ax[0, c].imshow(im, cmap="gray", vmin=0, vmax=1)
        ax[1, c].imshow(im, cmap="gray", vmin=0, vmax=1)
        ax[1, c].imshow(lab, cmap=cmap, vmin=-0.5, vmax=3.5, interpolation="nearest")
        ax[0, c].set_title(title, fontsize=7)
        for a in ax[:, c]:
            a.set_xticks([]), a.set_yticks([])
    ax[1, 0].set_ylabel("labels: CSF blue,\nGM red, WM yellow", fontsize=7)
    fig.suptitle("lstmcor embedded set: coronal MNI y = -20 mm, 160 x 192, 1 mm", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE / DEFAULT_FILENAME)
    p.add_argument("--check", action="store_true", help="compare a fresh build with --out, write nothing")
    p.add_argument("--montage", action="store_true", help="also write data/montage.png")
    p.add_argument("--stats", action="store_true", help="print deformation and Dice statistics")
    p.add_argument("--no-fetch", action="store_true", help="fail instead of fetching mricron-data")
    args = p.parse_args(argv)
    src = find_sources(fetch=not args.no_fetch)
    arrays, _ = build(src)
    if args.check:
        tmp = Path(str(args.out) + ".check")
        write_npz(tmp, arrays)
        same = tmp.read_bytes() == args.out.read_bytes()
        tmp.unlink()
        print(("identical to " if same else "DIFFERS from ") + str(args.out))
        return 0 if same else 1
    write_npz(args.out, arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, sha256 {sha256(args.out)})")
    if args.montage:
        montage(arrays, HERE / "montage.png")
        print(f"wrote {HERE / 'montage.png'}")
    if args.stats:
        print(json.dumps(statistics(arrays), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
