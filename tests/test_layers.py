"""One contract for every layer of the package, in the spirit of Keras's own ``run_layer_test``.

Each row of ``CASES`` names a layer, its arguments, the shapes it is called on, the output shape
and the number of weights it must have; the counts are written as the formula a reader can check
by hand. Every layer then goes through the same checks: ``get_config``/``from_config`` round trip,
output shape, weight counts, a ``safe_mode`` save and load with identical outputs, and one
training step in which the loss is finite and the weights in front of or inside the layer move.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from keras import ops

import lstmcor
from lstmcor import (
    ChannelsToSequence,
    FlowDepthwiseConv2D,
    IntegrateVelocity,
    PeepholeConvLSTM2D,
    SequenceToChannels,
    SpatialTransformer,
    SqueezeExcitation,
)

B, H, W = 2, 8, 12


@dataclasses.dataclass
class Case:
    layer: type
    kwargs: dict
    inputs: list[tuple[int, ...]]  # shapes without the batch axis; several for a layer called on a list
    output: tuple[int, ...]  # without the batch axis
    trainable: int  # number of trainable scalars
    id: str


def _lstm_count(f: int, k: int, cin: int, peepholes: bool) -> int:
    # input kernel k*k*cin*4f + recurrent kernel k*k*f*4f + bias 4f (+ 3 peephole vectors of f, Eq. 12, 13, 15)
    return k * k * cin * 4 * f + k * k * f * 4 * f + 4 * f + (3 * f if peepholes else 0)


CASES = [
    Case(SqueezeExcitation, {"ratio": 4}, [(H, W, 8)], (H, W, 8), 8 * 2 + 2 * 8, "se"),  # C/r = 2 hidden, no bias
    Case(SqueezeExcitation, {"ratio": 4, "use_bias": True}, [(H, W, 8)], (H, W, 8), 8 * 2 + 2 + 2 * 8 + 8, "se-bias"),
    Case(SqueezeExcitation, {"ratio": 8}, [(H, W, 2)], (H, W, 2), 2 * 1 + 1 * 2, "se-field"),  # max(1, 2 // 8) = 1
    Case(ChannelsToSequence, {}, [(H, W, 5)], (5, H, W, 1), 0, "to-sequence"),
    Case(SequenceToChannels, {}, [(5, H, W, 3)], (H, W, 15), 0, "to-channels"),
    Case(PeepholeConvLSTM2D, {"filters": 3, "kernel_size": 3}, [(5, H, W, 1)], (5, H, W, 3),
         _lstm_count(3, 3, 1, True), "convlstm"),
    Case(PeepholeConvLSTM2D, {"filters": 2, "kernel_size": 3, "use_peepholes": False, "return_sequences": False},
         [(4, H, W, 2)], (H, W, 2), _lstm_count(2, 3, 2, False), "convlstm-last"),
    Case(FlowDepthwiseConv2D, {"kernel_size": 3, "padding": "same"}, [(H, W, 6)], (H, W, 6), 3 * 3 * 6 + 6,
         "depthwise"),
    Case(FlowDepthwiseConv2D, {"kernel_size": 3, "padding": "same", "shifted_sum": True}, [(H, W, 6)], (H, W, 6),
         3 * 3 * 6 + 6, "depthwise-shifted"),
    Case(SpatialTransformer, {}, [(H, W, 3), (H, W, 2)], (H, W, 3), 0, "transformer"),
    Case(SpatialTransformer, {"interpolation": "nearest"}, [(H, W, 1), (H, W, 2)], (H, W, 1), 0, "transformer-nn"),
    Case(IntegrateVelocity, {"steps": 4}, [(H, W, 2)], (H, W, 2), 0, "integrate"),
]


def _registered_layers() -> set[str]:
    """Every layer class lstmcor registers with Keras (the cases must cover them all)."""
    import lstmcor.convlstm, lstmcor.flow_head, lstmcor.se, lstmcor.transform  # noqa: E401,F401

    return {name.split(">")[1] for name, obj in keras.saving.get_custom_objects().items()
            if name.startswith("lstmcor>") and isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
            and name != "lstmcor>DepthwiseConv2D"}  # the old name of FlowDepthwiseConv2D, for old files


def test_every_layer_has_a_case():
    assert _registered_layers() <= {case.layer.__name__ for case in CASES}


def _model(case: Case) -> keras.Model:
    """Inputs -> a trainable 1x1 conv on the first input (so gradients must pass the layer) -> layer."""
    inputs = [keras.Input(shape, name=f"in{k}") for k, shape in enumerate(case.inputs)]
    first = inputs[0]
    conv = keras.layers.Conv2D if len(case.inputs[0]) == 3 else keras.layers.Conv3D  # images or sequences
    first = conv(case.inputs[0][-1], 1, name="front")(first)
    args = [first, *inputs[1:]]
    layer = case.layer(name="under_test", **case.kwargs)
    out = layer(args if len(args) > 1 else args[0])
    return keras.Model(inputs, out)


def _data(case: Case, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(0, 1, (B, *shape)).astype("float32") for shape in case.inputs]
    if case.layer is SpatialTransformer:
        arrays[1] = (3.0 * (arrays[1] - 0.5)).astype("float32")  # a field of about a pixel
    return arrays


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request):
    keras.utils.set_random_seed(0)
    return request.param


def test_config_round_trip(case):
    layer = case.layer(name="probe", **case.kwargs)
    config = layer.get_config()
    again = case.layer.from_config(config)
    assert again.get_config() == config
    for key, value in case.kwargs.items():
        assert config[key] == value or config[key] == (value,) * 2, key
    name = keras.saving.get_registered_name(case.layer)
    assert name == f"lstmcor>{case.layer.__name__}" and keras.saving.get_registered_object(name) is case.layer


def test_output_shape_and_weight_count(case):
    model = _model(case)
    layer = model.get_layer("under_test")
    assert tuple(model.output.shape) == (None, *case.output)
    out = layer(*[[ops.convert_to_tensor(x) for x in _data(case)]] if len(case.inputs) > 1
                else [ops.convert_to_tensor(_data(case)[0])])
    assert tuple(out.shape) == (B, *case.output)
    assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == case.trainable
    assert not layer.non_trainable_weights


def test_safe_mode_save_and_load(case, tmp_path):
    model = _model(case)
    for w in model.get_layer("under_test").weights:  # non-trivial values, peepholes included
        w.assign(np.random.default_rng(1).normal(0, 0.3, w.shape).astype("float32"))
    x = _data(case)
    expected = ops.convert_to_numpy(model(x))
    model.save(tmp_path / "layer.keras")
    loaded = keras.saving.load_model(tmp_path / "layer.keras", safe_mode=True)
    assert isinstance(loaded.get_layer("under_test"), case.layer)
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(x)), expected, atol=1e-6)


def test_one_training_step(case):
    model = _model(case)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x = _data(case)
    before = [np.array(w) for w in model.trainable_weights]
    loss = float(model.train_on_batch(x, np.random.default_rng(2).uniform(0, 1, (B, *case.output)).astype("float32")))
    assert np.isfinite(loss)
    moved = [not np.array_equal(b, np.array(w)) for b, w in zip(before, model.trainable_weights)]
    front = [k for k, w in enumerate(model.trainable_weights) if w.path.startswith("front")]
    assert front and any(moved[k] for k in front)  # gradients reached the layer's input through it
    own = [k for k, w in enumerate(model.trainable_weights) if w.path.startswith("under_test")]
    assert len(own) == len(model.get_layer("under_test").trainable_weights)
    assert any(moved[k] for k in own) or not own


def test_flow_depthwise_agrees_with_keras_depthwise():
    """The shifted-sum path (JAX's by default), forced on, against keras.layers.DepthwiseConv2D."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 9, 11, 5)).astype("float32")
    reference = keras.layers.DepthwiseConv2D(3, padding="same")
    ours = FlowDepthwiseConv2D(3, padding="same", shifted_sum=True)
    reference.build(x.shape)
    ours.build(x.shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in reference.weights]
    reference.set_weights(weights)
    ours.set_weights(weights)
    assert ours.shifted_sum_applies()
    np.testing.assert_allclose(ops.convert_to_numpy(ours(x)), ops.convert_to_numpy(reference(x)), atol=1e-5)
    native = FlowDepthwiseConv2D(3, padding="same", shifted_sum=False)
    native.build(x.shape)
    native.set_weights(weights)
    assert not native.shifted_sum_applies()
    np.testing.assert_allclose(ops.convert_to_numpy(native(x)), ops.convert_to_numpy(reference(x)), atol=1e-5)
    assert FlowDepthwiseConv2D(3, padding="valid", shifted_sum=True).shifted_sum_applies() is False
    assert lstmcor.FlowDepthwiseConv2D is FlowDepthwiseConv2D
