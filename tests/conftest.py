"""Test-wide set-up: full float32 precision on GPUs.

On NVIDIA GPUs JAX and PyTorch run float32 convolutions and matrix products in TensorFloat-32
(10-bit mantissa) by default, which moves results by about 1e-4: enough to fail comparisons with
NumPy, SciPy or another formulation at float32 tolerances, without anything being wrong. The tests
check the mathematics, so they ask for full precision. On a CPU nothing changes.

Also the small data the training and command-line tests share (``tiny``, ``tiny_folder``).
"""
from __future__ import annotations

import keras
import numpy as np
import pytest

if keras.backend.backend() == "jax":
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
elif keras.backend.backend() == "torch":
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


@pytest.fixture(scope="session")
def tiny():
    """The embedded set at 32 x 32 (every 5th row and 6th column): its 216 subjects, splits and label maps.

    For tests of training, resuming and sweeping, where the image size changes nothing of what is
    checked and a 160 x 192 image costs 30 times the time.
    """
    from lstmcor.data import RegistrationSet, load_default

    ds = load_default()
    return RegistrationSet(images=np.ascontiguousarray(ds.images[:, ::5, ::6]),
                           labels=np.ascontiguousarray(ds.labels[:, ::5, ::6]), subjects=ds.subjects,
                           splits=ds.splits, label_names=ds.label_names, name="tiny")


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tiny):
    """A data folder for ``--data``: 20 of the tiny images with their label maps (``s07.nii.gz`` and
    ``s07_seg.nii.gz``), written with lstmcor's own writer; the command line splits it 14/3/3."""
    from lstmcor.data.io import write_images

    folder = tmp_path_factory.mktemp("tiny_data")
    write_images([item for k in range(20) for item in ((folder / f"s{k:02d}.nii.gz", tiny.images[k], None),
                                                       (folder / f"s{k:02d}_seg.nii.gz", tiny.labels[k], None))])
    return folder
