"""Test-wide set-up: full float32 precision on GPUs.

On NVIDIA GPUs JAX and PyTorch run float32 convolutions and matrix products in TensorFloat-32
(10-bit mantissa) by default, which moves results by about 1e-4: enough to fail comparisons with
NumPy, SciPy or another formulation at float32 tolerances, without anything being wrong. The tests
check the mathematics, so they ask for full precision. On a CPU nothing changes.
"""
from __future__ import annotations

import keras

if keras.backend.backend() == "jax":
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
elif keras.backend.backend() == "torch":
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
