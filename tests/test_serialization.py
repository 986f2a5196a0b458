"""Every building block saves to ``.keras`` and loads with ``safe_mode=True`` (no Lambda layers)."""
import keras
import numpy as np
from keras import ops

from lstmcor import ChannelsToSequence, PeepholeConvLSTM2D, SequenceToChannels, SpatialTransformer, SqueezeExcitation

H, W = 16, 20


def _small_model():
    moving = keras.Input((H, W, 1), name="moving")
    fixed = keras.Input((H, W, 1), name="fixed")
    x = keras.layers.Concatenate(axis=-1)([moving, fixed])
    x = keras.layers.Conv2D(4, 3, padding="same", name="features")(x)
    x = SqueezeExcitation(ratio=2, use_bias=True, name="se")(x)
    seq = ChannelsToSequence(name="to_sequence")(x)  # [B, 4, H, W, 1]
    seq = PeepholeConvLSTM2D(3, 3, name="convlstm")(seq)  # [B, 4, H, W, 3]
    x = SequenceToChannels(name="to_channels")(seq)  # [B, H, W, 12]
    flow = keras.layers.Conv2D(2, 3, padding="same", name="flow")(x)
    flow = SqueezeExcitation(ratio=8, name="se_flow")(flow)  # hidden width max(1, 2 // 8) = 1
    moved = SpatialTransformer(name="transformer")([moving, flow])
    return keras.Model([moving, fixed], [moved, flow], name="tiny_lstmcor")


def test_save_and_load_safe_mode_gives_identical_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    model = _small_model()
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    rng = np.random.default_rng(0)
    lstm = model.get_layer("convlstm")
    for name in ("peephole_i", "peephole_f", "peephole_o"):
        getattr(lstm, name).assign(rng.normal(0.0, 1.0, size=(3,)).astype("float32"))
    # Make the field large enough (several pixels) that warping does something visible.
    flow_layer = model.get_layer("flow")
    flow_layer.kernel.assign(ops.convert_to_numpy(flow_layer.kernel) * 20.0)
    moving = rng.uniform(size=(2, H, W, 1)).astype("float32")
    fixed = rng.uniform(size=(2, H, W, 1)).astype("float32")
    moved, flow = (ops.convert_to_numpy(o) for o in model([moving, fixed]))
    assert np.abs(flow).max() > 0.5
    assert np.abs(moved - moving).max() > 1e-3

    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    moved2, flow2 = (ops.convert_to_numpy(o) for o in loaded([moving, fixed]))
    np.testing.assert_allclose(moved2, moved, atol=1e-6)
    np.testing.assert_allclose(flow2, flow, atol=1e-6)
    loaded_lstm = loaded.get_layer("convlstm")
    assert isinstance(loaded_lstm, PeepholeConvLSTM2D)
    for name in ("peephole_i", "peephole_f", "peephole_o"):
        np.testing.assert_array_equal(ops.convert_to_numpy(getattr(loaded_lstm, name)),
                                      ops.convert_to_numpy(getattr(lstm, name)))
    for name, cls in (("se", SqueezeExcitation), ("to_sequence", ChannelsToSequence),
                      ("to_channels", SequenceToChannels), ("transformer", SpatialTransformer)):
        assert isinstance(loaded.get_layer(name), cls)
    assert len(loaded.weights) == len(model.weights)
