"""lstmcor.diagrams.unet_diagram draws the boxes of the model it is given (Agg backend)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from lstmcor.diagrams import unet_diagram  # noqa: E402
from lstmcor.models import build_lstmcor  # noqa: E402


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
