"""The old import path of :mod:`lstmcor.training` (``from lstmcor.train import train`` keeps working).

``lstmcor.train`` itself is the function :func:`lstmcor.training.train`, whatever has been imported.
"""
from lstmcor.training import *  # noqa: F401,F403
from lstmcor.training import __all__  # noqa: F401
