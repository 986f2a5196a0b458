"""Runtime choices that depend on the backend and the machine: the device, and jit_compile.

Example:
    >>> from lstmcor.runtime import device_name, recommended_jit_compile
    >>> isinstance(device_name(), str), recommended_jit_compile("jax")
    (True, True)
"""
from __future__ import annotations

import keras


def device_name() -> str:
    """The accelerator Keras will use, e.g. ``'gpu:0'``, or ``'cpu:0'``."""
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # backends without the distribution API (torch)
        devices = []
    accelerators = [d for d in devices if not d.lower().startswith("cpu")]
    return (accelerators or devices or ["cpu"])[0]


def recommended_jit_compile(backend: str | None = None) -> bool:
    """The ``jit_compile`` setting for ``model.compile`` that ran these models fastest on a backend.

    Measured with ``benchmarks/inference.py`` on a 2-core CPU (see ``benchmarks/README.md``).
    TensorFlow: False; XLA's CPU convolutions are slower than oneDNN's, so ``jit_compile=True``
    made VoxelMorph about 2 times and LSTM-COR about 3.4 times slower per pair (and a LSTM-COR
    training step about 17 times slower). JAX: True, its normal mode (False runs the model op by
    op). PyTorch: False; ``torch.compile`` (True) made inference 2.6 (VoxelMorph) and 2.8
    (LSTM-COR) times faster but took about 3 minutes to compile on 2 cores, and made a VoxelMorph
    training step slower (333 against 254 ms), so eager mode is the better default for a course.
    On a GPU, time both settings with the benchmark before trusting this default.

    Args:
        backend: ``"tensorflow"``, ``"jax"`` or ``"torch"``; default the active Keras backend.
    """
    backend = backend or keras.backend.backend()
    return {"tensorflow": False, "jax": True, "torch": False}.get(backend, False)


def jit_setting(jit_compile="auto") -> bool:
    """``"auto"`` means :func:`recommended_jit_compile` for the active backend; else ``bool(jit_compile)``."""
    return recommended_jit_compile() if jit_compile == "auto" else bool(jit_compile)
