"""lstmcor.diagrams: the network drawn from the model itself (stages, names, output shapes)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from lstmcor import plots  # noqa: E402
from lstmcor.diagrams import model_diagram, model_stages, unet_diagram  # noqa: E402
from lstmcor.models import build_lstmcor, build_voxelmorph  # noqa: E402


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]


def _shape_text(model, name):
    return "[" + " x ".join(str(d) for d in model.get_layer(name).output.shape[1:]) + "]"


@pytest.mark.parametrize("size", [(32, 32), (32, 48)])
def test_lstmcor_diagram_draws_every_stage_with_the_model_s_shapes(size):
    model = build_lstmcor(size, n_seq=6, lstm_filters=2)
    fig = plots.model_diagram(model)
    texts = _texts(fig)
    plt.close(fig)
    keys = [s["key"] for s in model_stages(model)]
    order = ["inputs", "enc0", "bottleneck", "dec0", "sequence", "to_sequence", "convlstm", "from_sequence",
             "head_se", "depthwise", "flow_conv", "field_se", "transformer"]
    assert [k for k in keys if k in order] == order
    for name in ("pair", "enc0_act", "enc3_act", "funnel", "dec3_skip", "to_sequence", "convlstm", "from_sequence",
                 "head_se", "depthwise", "flow_conv", "field_se", "moved"):
        assert _shape_text(model, name) in texts, name
    # the sizes follow the input: H/8 x W/8 at the last encoder level, n_seq steps of F features
    h, w = size
    assert f"[{h // 8} x {w // 8} x 32]" in texts and f"[6 x {h} x {w} x 2]" in texts
    assert "skip0_se (SE)" in texts and "funnel_pool (from skip 0)" in texts


def test_ablated_and_voxelmorph_models_lack_their_missing_stages():
    ablated = build_lstmcor((32, 32), field_se=False, funnel=False, se_skips=False, recurrence="conv")
    keys = [s["key"] for s in model_stages(ablated)]
    assert "field_se" not in keys and "convlstm" not in keys and "recurrence" in keys
    no_peepholes = model_stages(build_lstmcor((32, 32), peepholes=False))
    assert [s["note"] for s in no_peepholes if s["key"] == "convlstm"] == ["Eq. 12-16, no peepholes"]
    fig = model_diagram(ablated)
    texts = _texts(fig)
    plt.close(fig)
    assert "field SE" not in texts and "skip0_se (SE)" not in texts and "funnel_pool (from skip 0)" not in texts
    vxm = build_voxelmorph((32, 32))
    keys = [s["key"] for s in model_stages(vxm)]
    assert keys[-2:] == ["flow_conv", "transformer"] and not {"head_se", "depthwise", "convlstm"} & set(keys)
    fig = model_diagram(vxm)
    assert _shape_text(vxm, "full2_act") in _texts(fig)
    plt.close(fig)


def test_a_foreign_model_is_refused_by_name():
    import keras

    inp = keras.Input((8, 8, 1))
    with pytest.raises(ValueError, match="not an lstmcor network"):
        model_stages(keras.Model(inp, keras.layers.Conv2D(1, 3)(inp)))


def test_unet_diagram_draws_one_box_per_feature_map_with_the_model_shapes():
    model = build_lstmcor(input_shape=(32, 48))
    fig = unet_diagram(model)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    # input, 4 encoder levels, 4 skip SE blocks, bottleneck, 4 decoder levels, the sequence
    assert len(boxes) == 1 + 4 + 4 + 1 + 4 + 1
    assert len(arrows) >= 4 * 2 + 3
    texts = [t.get_text() for t in ax.texts]
    assert "moving ⊕ fixed\n2×32×48" in texts
    assert "enc0\n16×32×48" in texts and "enc3\n32×4×6" in texts        # shapes read from this model
    assert any(t.startswith("funnel: average-pool /16\n→ 16×2×3") for t in texts)
    assert sum(t.startswith("skip") and t.endswith("_se") for t in texts) == 4
    plt.close(fig)


def test_unet_diagram_names_a_model_without_the_additions():
    with pytest.raises(ValueError, match="skip0_se"):
        unet_diagram(build_lstmcor(input_shape=(32, 32), se_skips=False, funnel=False))
