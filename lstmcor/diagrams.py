"""Diagrams of the course's networks, drawn from a built model's own layer shapes.

Plain Matplotlib; the model is only asked for ``get_layer(name).output.shape``, so importing this
module starts no backend.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ENCODER, DECODER, SKIP_SE, FUNNEL, INPUT = "#9ecae1", "#a1d99b", "#fdae6b", "#fee391", "lightgrey"


def unet_diagram(model, levels: int = 4):
    """LSTM-COR's sequence generator as boxes (feature maps) and arrows (operations).

    Boxes: the input pair, ``enc{k}_act`` (blue), the skip SE blocks ``skip{k}_se`` (orange), the
    bottleneck with the funnel (yellow), ``dec{k}_skip`` (green) and the sequence ``sequence_act``;
    each labelled ``channels x height x width`` read from the model. The red dashed arrow is the
    funnel (our reading: the SE-weighted top skip, average-pooled to the bottleneck).

    Args:
        model: a model from ``lstmcor.models.build_lstmcor`` with SE skips and funnel (the layers
            named above must exist).
        levels: down-sampling levels of its U-Net (4 for the paper's encoder).

    Returns:
        The Matplotlib figure; its axes hold one ``FancyBboxPatch`` per box.

    Raises:
        ValueError: when the model lacks one of the layers the diagram draws.

    Example:
        >>> from lstmcor.models import build_lstmcor
        >>> fig = unet_diagram(build_lstmcor((64, 64)))   # doctest: +SKIP
    """
    names = [f"enc{k}_act" for k in range(levels)] + [f"skip{k}_se" for k in range(levels)]
    names += ["funnel", "funnel_pool", "sequence_act"] + [f"dec{k}_skip" for k in range(levels)]
    present = {layer.name for layer in model.layers}
    missing = [n for n in names if n not in present]
    if missing:
        raise ValueError(f"unet_diagram: the model {model.name!r} has no layer(s) {missing}; "
                         "draw a build_lstmcor model with se_skips=True and funnel=True.")

    def shape_of(name):
        s = tuple(model.get_layer(name).output.shape[1:])
        return f"{s[2]}×{s[0]}×{s[1]}"

    fig, ax = plt.subplots(figsize=(14, 6.2))
    x_enc = [0.4 + 1.2 * k for k in range(levels)]
    x_dec = [x_enc[-1] + 4.0 + 1.2 * (levels - 1 - k) for k in range(levels)]
    width, x_se = 0.95, x_enc[-1] + 2.5
    x_bottom = x_enc[-1] + 0.9

    def y_of(level):
        return 5.0 - 1.15 * level

    def box(x, y, label, colour, h=0.55, w=width):
        ax.add_patch(FancyBboxPatch((x, y - h / 2), w, h, boxstyle="round,pad=0.02",
                                    fc=colour, ec="black", lw=0.8))
        ax.text(x + w / 2, y, label, ha="center", va="center", fontsize=7.5)

    def arrow(p, q, colour="black", ls="-", lw=1.0):
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=10, color=colour, lw=lw, ls=ls))

    in_shape = tuple(model.inputs[0].shape[1:3])
    box(-1.0, y_of(0), f"moving ⊕ fixed\n2×{in_shape[0]}×{in_shape[1]}", INPUT, w=1.1)
    arrow((0.1, y_of(0)), (x_enc[0], y_of(0)))
    for level in range(levels):
        y = y_of(level)
        box(x_enc[level], y, f"enc{level}\n{shape_of(f'enc{level}_act')}", ENCODER)
        if level < levels - 1:
            arrow((x_enc[level] + width / 2, y - 0.3), (x_enc[level + 1] + width / 2, y_of(level + 1) + 0.3))
            ax.text(x_enc[level] + width / 2 + 0.45, y - 0.62, "pool /2", fontsize=7)
        box(x_se, y, f"skip{level}_se", SKIP_SE, h=0.4)       # each skip passes its own SE block
        arrow((x_enc[level] + width, y), (x_se, y), colour="#e6550d")
        arrow((x_se + width, y), (x_dec[level], y), colour="#e6550d")
    yb = y_of(levels)
    box(x_bottom, yb, f"bottleneck ⊕ funnel\n{shape_of('funnel')}", FUNNEL, w=1.7)
    arrow((x_enc[-1] + width / 2, y_of(levels - 1) - 0.3), (x_bottom + 0.4, yb + 0.3))
    ax.text(x_enc[-1], yb + 0.45, "pool /2", fontsize=7)
    arrow((x_se + 0.05, y_of(0) - 0.22), (x_bottom + 1.05, yb + 0.3), colour="#cb181d", ls="--", lw=1.6)
    funnel_label = f"funnel: average-pool /{2 ** levels}\n→ {shape_of('funnel_pool')}"
    ax.text(x_se + 0.15, (y_of(1) + y_of(2)) / 2, funnel_label, color="#cb181d", fontsize=8, va="center")
    arrow((x_bottom + 1.7, yb), (x_dec[-1] + width / 2, y_of(levels - 1) - 0.3))
    ax.text(x_bottom + 2.3, yb + 0.1, "conv, up ×2", fontsize=7)
    for level in range(levels):
        y = y_of(levels - 1 - level)
        x = x_dec[levels - 1 - level]
        box(x, y, f"dec{level} ⊕ skip{levels - 1 - level}\n{shape_of(f'dec{level}_skip')}", DECODER, w=1.05)
        if level < levels - 1:
            arrow((x + width / 2, y + 0.3), (x_dec[levels - 2 - level] + width / 2, y_of(levels - 2 - level) - 0.3))
            ax.text(x + width / 2 - 0.9, y + 0.55, "conv, up ×2", fontsize=7)
    x_out = x_dec[0] + 1.35
    box(x_out, y_of(0), f"full convs\n→ sequence\n{shape_of('sequence_act')}", "#c7e9c0", h=0.8, w=1.15)
    arrow((x_dec[0] + 1.05, y_of(0)), (x_out, y_of(0)))
    arrow((x_out + 1.15, y_of(0)), (x_out + 1.55, y_of(0)))
    ax.text(x_out + 1.6, y_of(0), "to the\nConvLSTM", fontsize=8, va="center")
    ax.set_xlim(-1.1, x_out + 2.45)
    ax.set_ylim(yb - 0.7, y_of(0) + 0.7)
    ax.axis("off")
    ax.set_title("sequence generator of LSTM-COR (channels × height × width)", fontsize=11)
    return fig
