"""lstmcor: channel-attention deformable registration (LSTM-COR) in Keras 3, built for teaching.

The package follows the paper's pipeline, one module per idea:

- :mod:`lstmcor.se`: squeeze and excitation (Eq. 3-5)
- :mod:`lstmcor.convlstm`: channels as a sequence and the peephole ConvLSTM (Eq. 6, 12-16)
- :mod:`lstmcor.transform`: the spatial transformer (Eq. 19-20), scaling and squaring
- :mod:`lstmcor.losses`: MSE, the diffusion regulariser and the total loss (Eq. 21-23), local NCC
- :mod:`lstmcor.metrics`: Dice, HD95, Jacobian determinant, folding, SDlogJ
- :mod:`lstmcor.models`: LSTM-COR and the VoxelMorph baseline
- :mod:`lstmcor.data`, :mod:`lstmcor.train`, :mod:`lstmcor.evaluate`, :mod:`lstmcor.cli`

Names are imported on first use, so ``lstmcor --help`` answers without starting TensorFlow.
"""
import importlib
import os as _os

# Quiet TensorFlow's start-up messages for students; set TF_CPP_MIN_LOG_LEVEL yourself to see them.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_EXPORTS = {
    "ChannelsToSequence": "convlstm",
    "PeepholeConvLSTM2D": "convlstm",
    "SequenceToChannels": "convlstm",
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
    "register": "models",
    "load_dataset": "data",
    "load_default": "data",
    "PairDataset": "data",
    "train": "train",
    "evaluate": "evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"lstmcor.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lstmcor' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
