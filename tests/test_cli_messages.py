"""The command line speaks its own language: flags in messages, results under runs/."""
import numpy as np
import pytest

from lstmcor.data import RegistrationSet
from lstmcor.evaluation import evaluate


def test_evaluate_api_caps_n_pairs():
    rng = np.random.default_rng(0)
    data = RegistrationSet(images=rng.random((4, 32, 32), dtype=np.float32), labels=None,
                           subjects=["a", "b", "c", "d"], splits={"test": np.arange(4)}, label_names=[], name="four")
    with pytest.warns(UserWarning, match=r"n_pairs=50 asks for more than the 12 distinct pairs of split 'test'"):
        result = evaluate({}, data, n_pairs=50, timing_runs=1, progress=False)
    assert len(result.pairs) == len(set(result.pairs)) == 12
