"""lstmcor: channel-attention deformable registration (LSTM-COR) in Keras 3, built for teaching.

The package follows the paper's pipeline, one module per idea:

- :mod:`lstmcor.se`: squeeze and excitation (Eq. 3-5)
- :mod:`lstmcor.convlstm`: channels as a sequence and the peephole ConvLSTM (Eq. 6, 12-16)
- :mod:`lstmcor.flow_head`: the depthwise flow head (Eq. 17-18)
- :mod:`lstmcor.transform`: the spatial transformer (Eq. 19-20), scaling and squaring
- :mod:`lstmcor.losses`: MSE, the diffusion regulariser and the total loss (Eq. 21-23), local NCC
- :mod:`lstmcor.metrics`: Dice, HD95, Jacobian determinant, folding, SDlogJ
- :mod:`lstmcor.models`: LSTM-COR and the VoxelMorph baseline
- :mod:`lstmcor.data` (a package), :mod:`lstmcor.training` (with :mod:`lstmcor.runs`), :mod:`lstmcor.evaluation`,
  :mod:`lstmcor.registration`, :mod:`lstmcor.saving`, :mod:`lstmcor.settings`,
  :mod:`lstmcor.runtime`, :mod:`lstmcor.cli`

Names are imported on first use, so ``lstmcor --help`` answers without starting a backend. The
package's layers are registered with Keras as soon as Keras is imported (before or after
``lstmcor``), so ``keras.saving.load_model(path, safe_mode=True)`` loads a saved model with no
further import. ``lstmcor.train`` and ``lstmcor.evaluate`` are always the functions, even after
their old modules ``lstmcor/train.py`` and ``lstmcor/evaluate.py`` have been imported.
"""
import importlib
import importlib.abc
import importlib.machinery
import os as _os
import sys as _sys
import types as _types
import warnings as _warnings

# Quiet TensorFlow's start-up messages for students; set TF_CPP_MIN_LOG_LEVEL yourself to see them.
# The user's own setting is remembered so the command line can leave it alone (lstmcor.cli).
_TF_LOG_LEVEL_FROM_USER = _os.environ.get("TF_CPP_MIN_LOG_LEVEL")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_EXPORTS = {
    "ChannelsToSequence": "convlstm",
    "PeepholeConvLSTM2D": "convlstm",
    "SequenceToChannels": "convlstm",
    "FlowDepthwiseConv2D": "flow_head",
    "Grad": "losses",
    "MSE": "losses",
    "NCC": "losses",
    "grad_l2": "losses",
    "mse": "losses",
    "ncc": "losses",
    "total_loss": "losses",
    "dice": "metrics",
    "endpoint_error": "metrics",
    "folding_fraction": "metrics",
    "hd95": "metrics",
    "jacobian_determinant": "metrics",
    "mean_dice": "metrics",
    "sdlogj": "metrics",
    "SqueezeExcitation": "se",
    "IntegrateVelocity": "transform",
    "SpatialTransformer": "transform",
    "integrate": "transform",
    "spatial_transform": "transform",
    "warp": "transform",
    "build_lstmcor": "models",
    "build_voxelmorph": "models",
    "build_model": "models",
    "register": "registration",
    "load_model": "saving",
    "shipped_weights": "saving",
    "shipped_seeds": "saving",
    "shipped_variants": "saving",
    "load_dataset": "data",
    "load_default": "data",
    "read_image": "data",
    "PairDataset": "data",
    "train": "training",
    "evaluate": "evaluation",
}

__all__ = sorted(_EXPORTS)

# Modules that register Keras serializables (layers, losses); imported once Keras is.
_KERAS_MODULES = ("se", "convlstm", "flow_head", "transform", "losses")


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"lstmcor.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lstmcor' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)


class _Package(_types.ModuleType):
    """The package module: importing a submodule never replaces an exported function of that name.

    Python binds ``lstmcor.<sub>`` to a submodule once it is imported; for ``train`` and ``evaluate``
    (the old module names of :mod:`lstmcor.training` and :mod:`lstmcor.evaluation`) that would
    shadow the functions of the same names.
    """

    def __setattr__(self, name, value):
        if isinstance(value, _types.ModuleType) and name in _EXPORTS and _EXPORTS[name] != name:
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def _register_with_keras() -> None:
    for module in _KERAS_MODULES:
        importlib.import_module(f"lstmcor.{module}")


class _RegisterAfter(importlib.abc.Loader):
    """Runs Keras's own loader, then registers lstmcor's layers (see :class:`_WhenKerasLoads`)."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _WhenKerasLoads.uninstall()
        try:
            _register_with_keras()
        except Exception as error:  # never break `import keras`
            _warnings.warn(f"lstmcor could not register its layers with Keras ({error}); "
                           "import lstmcor.models before loading a saved model.", stacklevel=2)

    def __getattr__(self, name):  # resources, source, is_package, ...: Keras's loader answers
        return getattr(self._loader, name)


class _WhenKerasLoads(importlib.abc.MetaPathFinder):
    """A post-import hook: when ``keras`` is first imported, register lstmcor's layers with it.

    Importing Keras starts a backend (seconds with TensorFlow), which ``lstmcor --help`` and
    ``from lstmcor.data import read_image`` should not pay; yet ``import lstmcor`` then
    ``keras.saving.load_model(...)`` must find the package's layers.
    """

    _busy = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or _WhenKerasLoads._busy:
            return None
        _WhenKerasLoads._busy = True
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        finally:
            _WhenKerasLoads._busy = False
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisterAfter(spec.loader)
        return spec

    @staticmethod
    def uninstall() -> None:
        _sys.meta_path[:] = [f for f in _sys.meta_path if not isinstance(f, _WhenKerasLoads)]


if "keras" in _sys.modules:
    _register_with_keras()
elif not any(isinstance(f, _WhenKerasLoads) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _WhenKerasLoads())
