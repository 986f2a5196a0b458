"""The old import path of :mod:`lstmcor.evaluation` (``from lstmcor.evaluate import evaluate`` keeps working).

``lstmcor.evaluate`` itself is the function :func:`lstmcor.evaluation.evaluate`, whatever has been imported.
"""
from lstmcor.evaluation import *  # noqa: F401,F403
from lstmcor.evaluation import __all__  # noqa: F401
