"""lstmcor: channel-attention deformable registration (LSTM-COR) in Keras 3, built for teaching.

The package follows the paper's pipeline, one module per idea:

- :mod:`lstmcor.se`: squeeze and excitation (Eq. 3-5)
- :mod:`lstmcor.convlstm`: channels as a sequence and the peephole ConvLSTM (Eq. 6, 12-16)
- :mod:`lstmcor.transform`: the spatial transformer (Eq. 19-20)
- :mod:`lstmcor.losses`: MSE, the diffusion regulariser and the total loss (Eq. 21-23)
- :mod:`lstmcor.metrics`: Dice, Jacobian determinant, folding, SDlogJ
"""
import os as _os

# Quiet TensorFlow's start-up banner for students; set TF_CPP_MIN_LOG_LEVEL yourself to see it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from lstmcor.convlstm import ChannelsToSequence, PeepholeConvLSTM2D, SequenceToChannels
from lstmcor.losses import MSE, Grad, grad_l2, mse, total_loss
from lstmcor.metrics import dice, endpoint_error, folding_fraction, jacobian_determinant, mean_dice, sdlogj
from lstmcor.se import SqueezeExcitation
from lstmcor.transform import SpatialTransformer, spatial_transform, warp

__version__ = "0.1.0"

__all__ = [
    "ChannelsToSequence",
    "Grad",
    "MSE",
    "PeepholeConvLSTM2D",
    "SequenceToChannels",
    "SpatialTransformer",
    "SqueezeExcitation",
    "dice",
    "endpoint_error",
    "folding_fraction",
    "grad_l2",
    "jacobian_determinant",
    "mean_dice",
    "mse",
    "sdlogj",
    "spatial_transform",
    "total_loss",
    "warp",
]
