"""Loading a trained registration network: ``lstmcor.load_model(path)``.

``keras.saving.load_model(path, safe_mode=True)`` works too once ``lstmcor`` has been imported
(the package registers its layers with Keras); :func:`load_model` adds the checks a user needs:
one line naming the file when it is missing or damaged, and a refusal of Keras models that are
not registration networks (``[moving, fixed] -> [moved, flow]``) before anything is written.

Example:
    >>> import lstmcor
    >>> model = lstmcor.load_model(lstmcor.shipped_weights("voxelmorph"))
    >>> [tuple(t.shape) for t in model.outputs]
    [(None, 160, 192, 1), (None, 160, 192, 2)]
"""
from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import keras

from lstmcor.data.resources import shipped_seeds, shipped_variants, shipped_weights, weights_dir  # noqa: F401  (re-exported)


def check_registration_model(model, source: str = "the model") -> keras.Model:
    """Raise ``ValueError`` unless ``model`` maps ``[moving, fixed]`` ``[B, H, W, 1]`` to ``[moved, flow]``."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"{source} is a {type(model).__name__}, not a Keras model: give a model.keras "
                         "written by `lstmcor train` (or data/weights/*.keras).")
    inputs = [tuple(t.shape) for t in model.inputs]
    outputs = [tuple(t.shape) for t in model.outputs]
    ok = (len(inputs) == 2 and len(outputs) == 2 and all(len(s) == 4 and s[-1] == 1 for s in inputs)
          and inputs[0] == inputs[1] and outputs[0] == inputs[0]
          and outputs[1][:3] == inputs[0][:3] and outputs[1][-1] == 2)
    if not ok:
        raise ValueError(f"{source} is a Keras model but not a registration network: it maps {inputs} to "
                         f"{outputs}, while lstmcor needs [moving, fixed] ([B, H, W, 1] each) -> [moved, flow] "
                         "([B, H, W, 1], [B, H, W, 2]). Give a model.keras written by `lstmcor train`.")
    return model


def load_model(path: str | os.PathLike, check: bool = True) -> keras.Model:
    """Load a saved ``.keras`` registration network safely (no code runs on load), uncompiled.

    Args:
        path: a ``.keras`` file from ``lstmcor train`` or ``data/weights``.
        check: refuse models that are not ``[moving, fixed] -> [moved, flow]`` networks.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is damaged or not a Keras model, or (with ``check``) the model is not
            a registration network; the message names the file and what to do.
    """
    path = Path(path)
    if not path.is_file():
        what = " (a folder, not a file)" if path.is_dir() else ""
        raise FileNotFoundError(f"no weights at '{path}'{what}: give the model.keras written by `lstmcor train` "
                                "(or one of data/weights/*.keras).")
    advice = "use another copy, or train again with `lstmcor train`."
    if not path.name.endswith(".keras"):
        raise ValueError(f"weights '{path}' are not a .keras file: give the model.keras written by `lstmcor train`.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"weights '{path}' are not a model saved by lstmcor: the file is damaged or truncated "
                         f"(a .keras file is a zip archive and this one is not); {advice}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns before it raises; the one line below says it all
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # zip, HDF5, JSON and config errors all mean the same to a user
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise ValueError(f"weights '{path}' are not a model saved by lstmcor, or are damaged "
                         f"({type(error).__name__}{': ' + reason if reason else ''}); {advice}") from None
    return check_registration_model(model, f"weights '{path}'") if check else model
