"""The diffeomorphic option (``integration_steps``): a field that folds as a displacement does not fold integrated."""
import keras
import numpy as np
import pytest

from lstmcor.metrics import folding_fraction
from lstmcor.models import build_lstmcor, build_model, build_voxelmorph, velocity_model
from lstmcor.se import SqueezeExcitation
from lstmcor.transform import integrate, warp

SHAPE = (32, 32)
BUILDERS = [build_voxelmorph, build_lstmcor]


def _bump(shape=SHAPE, sigma=4.0):
    rows, cols = np.meshgrid(np.arange(shape[0], dtype="float64"), np.arange(shape[1], dtype="float64"),
                             indexing="ij")
    centre = (np.asarray(shape) - 1) / 2
    return np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * sigma**2)).astype("float32")


def _pair():
    bump = _bump()[None, ..., None]
    return [bump, np.zeros_like(bump)]


def _route_moving_to_field(model, gain):
    """Set every weight so the head's field is ``(gain * h(moving), 0)`` for a smooth increasing ``h``.

    Every convolution is zeroed except a centre tap that carries the moving image along the
    full-resolution path (first encoder conv, its skip, the full-resolution convs); SE blocks get
    zero weights (every gate 0.5); LSTM-COR's ConvLSTM keeps its input gate open, its forget gate
    shut and its output gate open, so ``h = tanh(tanh(x))``; the depthwise conv passes each channel.
    For a bump image the field pushes rows apart on one side of the bump and together on the other,
    and with a large enough ``gain`` the plain displacement folds there.
    """
    dec_skip = model.get_layer("dec3_skip").input[0].shape[-1]  # the top skip follows the upsampled features
    sources = {"enc0_conv": 0, "full0_conv": dec_skip}
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        weights = [np.zeros_like(w) for w in weights]
        name = layer.name
        if isinstance(layer, SqueezeExcitation):
            pass
        elif name == "convlstm":
            filters = layer.filters
            weights[0][1, 1, 0, 2 * filters : 3 * filters] = 1.0  # input -> cell candidate
            weights[2][:filters], weights[2][filters : 2 * filters], weights[2][3 * filters :] = 30.0, -30.0, 30.0
        elif name == "depthwise":
            weights[0][1, 1, :, 0] = 1.0
        elif name == "flow_conv":
            weights[0][1, 1, :, 0] = gain / weights[0].shape[2]
        elif name == "sequence_conv":
            weights[0][1, 1, 0, :] = 1.0
        elif name.endswith("_conv") and (name in sources or name.startswith("full")):
            weights[0][1, 1, sources.get(name, 0), 0] = 1.0
        layer.set_weights(weights)
    return model


def _folding_head(builder, integration_steps, fold=2.0):
    """A model whose head emits a smooth field with ``max |d field_0 / d row| = fold`` (> 1 folds)."""
    probe = _route_moving_to_field(builder(SHAPE), 1.0)
    field = probe.predict_on_batch(_pair())[1][0]
    slope = np.abs(np.gradient(field[..., 0], axis=0)).max()
    assert slope > 0 and np.abs(field[..., 1]).max() == 0
    return _route_moving_to_field(builder(SHAPE, integration_steps=integration_steps), fold / slope)


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_integrated_flow_does_not_fold_where_the_plain_one_does(builder):
    plain = _folding_head(builder, 0)
    moved, flow = plain.predict_on_batch(_pair())
    assert folding_fraction(flow[0]) > 0.01, "the test field should fold as a plain displacement"

    diffeo = _folding_head(builder, 7)
    moved, flow = diffeo.predict_on_batch(_pair())
    velocity = velocity_model(diffeo).predict_on_batch(_pair())
    # the velocity is the plain model's field; flow is its integration, and flow moved the image
    np.testing.assert_allclose(velocity, plain.predict_on_batch(_pair())[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flow, keras.ops.convert_to_numpy(integrate(velocity, 7)), atol=1e-5)
    np.testing.assert_allclose(moved, warp(_pair()[0], flow), atol=1e-5)
    assert np.abs(flow).max() > 1.0, "the integrated field should move pixels"
    assert folding_fraction(flow[0]) == 0.0


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_integrated_model_saves_and_loads_in_safe_mode(tmp_path, builder):
    model = builder(SHAPE, integration_steps=7)
    layer = model.get_layer("flow_conv")
    kernel, bias = layer.get_weights()
    layer.set_weights([np.random.default_rng(1).normal(0, 0.05, kernel.shape).astype("float32"), bias + 0.7])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_layer("integrate").steps == 7
    for a, b in zip(model.predict_on_batch(_pair()), loaded.predict_on_batch(_pair())):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["voxelmorph", "lstmcor"])
def test_zero_steps_is_the_paper_model(name):
    today = build_model(name, SHAPE)
    zero = build_model(name, SHAPE, integration_steps=0)
    assert [layer.name for layer in zero.layers] == [layer.name for layer in today.layers]
    assert [w.shape for w in zero.weights] == [w.shape for w in today.weights]
    assert "velocity" not in {layer.name for layer in zero.layers}
    with pytest.raises(ValueError, match="integration_steps=0"):
        velocity_model(zero)
    seven = build_model(name, SHAPE, integration_steps=7)
    assert len(seven.weights) == len(today.weights), "integration adds no weight"
    assert [layer.name for layer in seven.layers if layer.name not in ("velocity", "integrate")] == [
        layer.name for layer in today.layers]


def test_field_se_gates_the_velocity():
    model = build_lstmcor(SHAPE, integration_steps=7)
    assert model.get_layer("velocity").input is model.get_layer("field_se").output


@pytest.mark.parametrize("steps", [-1, 1.5, True, "7"])
def test_bad_integration_steps(steps):
    with pytest.raises(ValueError, match="integration_steps"):
        build_voxelmorph(SHAPE, integration_steps=steps)


def test_integrated_model_trains_one_step():
    from lstmcor.training import compile_model

    model = compile_model(build_voxelmorph(SHAPE, integration_steps=7))
    moving, fixed = (np.random.default_rng(k).random((2,) + SHAPE + (1,), dtype=np.float32) for k in (0, 1))
    before = model.get_layer("flow_conv").get_weights()[0].copy()
    logs = model.train_on_batch([moving, fixed], [fixed, np.zeros((2,) + SHAPE + (2,), np.float32)], return_dict=True)
    assert np.isfinite(logs["loss"])
    assert not np.array_equal(before, model.get_layer("flow_conv").get_weights()[0])
