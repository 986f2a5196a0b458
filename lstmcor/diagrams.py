"""A one-page picture of a registration network, drawn from the model itself.

:func:`model_stages` reads a model built by :mod:`lstmcor.models` (LSTM-COR, its ablations or
VoxelMorph) by its layer names and lists its stages in order, each with the layers it holds and
the output shape of its last layer, taken from ``model.get_layer(name).output.shape``.
:func:`model_diagram` draws them: the U-Net as a U (encoder down, decoder up, the skips across,
the funnel to the bottleneck), then the rest of the network (Eq. 6, the ConvLSTM, the flow head,
the field's SE, the warp) as a chain. A stage the model lacks is not drawn, so an ablated or
differently sized model draws differently. Importing this module starts no Keras backend.

Example:
    >>> from lstmcor.models import build_lstmcor
    >>> model = build_lstmcor((32, 32))
    >>> [s["key"] for s in model_stages(model)][:3]
    ['inputs', 'enc0', 'enc1']
    >>> fig = model_diagram(model)        # a Matplotlib figure; plt.show() it in a notebook
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

COLOURS = {"input": "#dddddd", "unet": "#cfe0f5", "se": "#fbd9a8", "recurrence": "#cdebc5",
           "head": "#e2d3f0", "warp": "#f3c9c9"}
#: The paths of the paper's additions to the U-Net (SE on the skips, the funnel) in both diagrams.
ACCENT = "#c07000"

#: The stages after the U-Net, in order: (key, layers, title, equations, kind).
TAIL = (
    ("sequence", ("sequence_conv", "sequence_act"), "sequence conv", "n_seq channels", "unet"),
    ("to_sequence", ("to_sequence",), "channels -> steps", "Eq. 6", "recurrence"),
    ("convlstm", ("convlstm",), "ConvLSTM", "Eq. 12-16, peepholes", "recurrence"),
    ("recurrence", ("recurrence_conv", "recurrence_act"), "conv (no recurrence)", "ablation", "recurrence"),
    ("from_sequence", ("from_sequence",), "steps -> channels", "Eq. 6 inverse", "recurrence"),
    ("head_se", ("head_se",), "head SE", "Eq. 3-5", "se"),
    ("depthwise", ("depthwise",), "depthwise 3x3", "Eq. 17", "head"),
    ("flow_conv", ("flow_conv",), "conv to the field", "Eq. 18", "head"),
    ("field_se", ("field_se",), "field SE", "Eq. 3-5 on D", "se"),
    ("integrate", ("velocity", "integrate"), "integrate velocity", "scaling and squaring", "head"),
    ("transformer", ("transformer", "moved", "flow"), "spatial transformer", "Eq. 19-20; moved, flow", "warp"),
)


def _shape(model, name: str) -> tuple:
    """A layer's output shape without the batch axis, e.g. ``(32, 32, 16)``."""
    output = model.get_layer(name).output
    if isinstance(output, (list, tuple)):
        output = output[0]
    return tuple(output.shape[1:])


def _text_shape(shape: tuple) -> str:
    return " x ".join("?" if d is None else str(d) for d in shape)


def model_stages(model) -> list[dict]:
    """The stages of an :mod:`lstmcor.models` network, in order.

    Args:
        model: a Keras model built by ``build_lstmcor`` / ``build_voxelmorph`` (any options).

    Returns:
        A list of dicts with ``key`` (e.g. ``"enc0"``, ``"convlstm"``), ``title``, ``note``
        (equations), ``kind`` (colour class), ``layers`` (names present in the model), ``shape``
        (output shape of the stage's last layer, batch axis dropped), and for U-Net levels
        ``level`` and ``skip_se`` (whether the skip passes an SE block).

    Raises:
        ValueError: the model has none of the layers a package model has.
    """
    names = {layer.name for layer in model.layers}
    if not {"moving", "fixed", "pair", "enc0_conv"} <= names:
        raise ValueError(f"model {getattr(model, 'name', model)!r} is not an lstmcor network: it lacks the layers "
                         f"'moving', 'fixed', 'pair', 'enc0_conv'; it has {sorted(names)[:8]}...")
    stages = [{"key": "inputs", "title": "moving, fixed", "note": "stacked pair", "kind": "input",
               "layers": ["moving", "fixed", "pair"], "shape": _shape(model, "pair")}]
    levels = 0
    while f"enc{levels}_conv" in names:
        levels += 1
    for level in range(levels):
        skip = f"skip{level}_se" in names
        stages.append({"key": f"enc{level}", "title": f"encoder {level}",
                       "note": "conv 3x3" + (", SE skip" if skip else ""),
                       "kind": "unet", "layers": [n for n in (f"enc{level}_conv", f"enc{level}_act", f"skip{level}_se")
                                                  if n in names],
                       "shape": _shape(model, f"enc{level}_act"), "level": level, "skip_se": skip})
    bottom = f"enc{levels - 1}_pool"
    funnel = "funnel" in names
    stages.append({"key": "bottleneck", "title": "bottleneck" + (" + funnel" if funnel else ""),
                   "note": "pooled top skip joins" if funnel else "max-pooled", "kind": "unet",
                   "layers": [bottom] + (["funnel_pool", "funnel"] if funnel else []),
                   "shape": _shape(model, "funnel" if funnel else bottom), "level": levels})
    for level in range(levels):
        stages.append({"key": f"dec{level}", "title": f"decoder {level}", "note": "conv, up, + skip",
                       "kind": "unet", "layers": [f"dec{level}_conv", f"dec{level}_act", f"dec{level}_up",
                                                  f"dec{level}_skip"],
                       "shape": _shape(model, f"dec{level}_skip"), "level": levels - 1 - level})
    k = 0
    while f"full{k}_conv" in names:
        stages.append({"key": f"full{k}", "title": f"full-res conv {k}", "note": "conv 3x3", "kind": "unet",
                       "layers": [f"full{k}_conv", f"full{k}_act"], "shape": _shape(model, f"full{k}_act")})
        k += 1
    for key, layers, title, note, kind in TAIL:
        present = [n for n in layers if n in names]
        if present:
            last = [n for n in present if n != "flow"][-1]
            if key == "convlstm" and not getattr(model.get_layer("convlstm"), "use_peepholes", True):
                note = "Eq. 12-16, no peepholes"
            stages.append({"key": key, "title": title, "note": note, "kind": kind, "layers": present,
                           "shape": _shape(model, last)})
    return stages


def _box(ax, x: float, y: float, stage: dict, width: float, height: float, fontsize: float):
    ax.add_patch(plt.Rectangle((x - width / 2, y - height / 2), width, height, facecolor=COLOURS[stage["kind"]],
                               edgecolor="#555555", linewidth=0.8, zorder=2))
    ax.text(x, y + height * 0.22, stage["title"], ha="center", va="center", fontsize=fontsize, weight="bold", zorder=3)
    ax.text(x, y - height * 0.02, stage["note"], ha="center", va="center", fontsize=fontsize * 0.85, zorder=3,
            style="italic")
    ax.text(x, y - height * 0.27, "[" + _text_shape(stage["shape"]) + "]", ha="center", va="center",
            fontsize=fontsize * 0.9, family="monospace", zorder=3)


def _arrow(ax, start, end, label: str | None = None, dashed: bool = False, colour: str = "#333333"):
    ax.annotate("", xy=end, xytext=start, zorder=1,
                arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.0, linestyle="--" if dashed else "-",
                                shrinkA=0, shrinkB=0))
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.08, label, ha="center", va="bottom",
                fontsize=7, color=colour, zorder=3)


def model_diagram(model, ax=None, title: str | None = None):
    """Draw ``model`` stage by stage (see :func:`model_stages`): names, equations, output shapes.

    Args:
        model: a network of :mod:`lstmcor.models`.
        ax: Matplotlib axes to draw on (default: a new figure sized to the model).
        title: the axes' title (default: the model's name and input size).

    Returns:
        The figure.
    """
    stages = model_stages(model)
    by_key = {s["key"]: s for s in stages}
    levels = sum(1 for s in stages if s["key"].startswith("enc"))
    rows = levels + 1                       # U-Net depth, in rows
    tail = [s for s in stages if not (s["key"] in ("inputs", "bottleneck") or s["key"][:3] in ("enc", "dec"))]
    tail_columns = -(-len(tail) // rows)
    columns = 2 * levels + 2 + tail_columns
    if ax is None:
        _, ax = plt.subplots(figsize=(1.45 * columns + 0.5, 1.15 * rows + 0.9))
    width, height, fontsize = 0.9, 0.78, 7.5
    pos = {"inputs": (0.0, 0.0)}
    for level in range(levels):
        pos[f"enc{level}"] = (1.0 + level, -float(level))
        pos[f"dec{levels - 1 - level}"] = (2.0 * levels + 1 - level, -float(level))
    pos["bottleneck"] = (1.0 + levels, -float(levels))
    for k, stage in enumerate(tail):           # a snake: down the first column, up the next, ...
        column, row = divmod(k, rows)
        row = row if column % 2 == 0 else rows - 1 - row
        pos[stage["key"]] = (2.0 * levels + 2 + column, -float(row))
    for stage in stages:
        _box(ax, *pos[stage["key"]], stage, width, height, fontsize)
    chain = ["inputs"] + [f"enc{lv}" for lv in range(levels)] + ["bottleneck"] + \
            [f"dec{lv}" for lv in range(levels)] + [s["key"] for s in tail]
    for a, b in zip(chain, chain[1:]):
        (xa, ya), (xb, yb) = pos[a], pos[b]
        if abs(xb - xa) >= abs(yb - ya):
            start, end = (xa + width / 2 * (1 if xb > xa else -1), ya), (xb - width / 2 * (1 if xb > xa else -1), yb)
        else:
            start, end = (xa, ya + height / 2 * (1 if yb > ya else -1)), (xb, yb - height / 2 * (1 if yb > ya else -1))
        _arrow(ax, start, end)
    for level in range(levels):
        (xa, ya), (xb, yb) = pos[f"enc{level}"], pos[f"dec{levels - 1 - level}"]
        label = f"skip{level}_se (SE)" if by_key[f"enc{level}"]["skip_se"] else "skip"
        _arrow(ax, (xa + width / 2, ya + 0.12), (xb - width / 2, yb + 0.12), label,
               colour=ACCENT if by_key[f"enc{level}"]["skip_se"] else "#555555")
    if "funnel" in by_key["bottleneck"]["layers"]:
        (xa, ya), (xb, yb) = pos["enc0"], pos["bottleneck"]   # down from encoder 0, then across
        ax.plot([xa - 0.3, xa - 0.3], [ya - height / 2, yb], "--", color=ACCENT, lw=1.0, zorder=1)
        _arrow(ax, (xa - 0.3, yb), (xb - width / 2, yb), "funnel_pool (from skip 0)", dashed=True, colour=ACCENT)
    xs = [p[0] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(-rows + 0.4, 0.75)
    ax.set_aspect("auto")
    ax.axis("off")
    shape = by_key["inputs"]["shape"]
    ax.set_title(title or f"{model.name}: {_text_shape(shape[:2])} pair, {model.count_params():,} parameters",
                 fontsize=10)
    ax.figure.tight_layout()
    return ax.figure


# The U-Net of chapter 02, box by box (chapter 02's figure), in the colours of model_diagram.
ENCODER = DECODER = FUNNEL = COLOURS["unet"]
SKIP_SE, INPUT = COLOURS["se"], COLOURS["input"]


def unet_diagram(model, levels: int = 4):
    """LSTM-COR's sequence generator as boxes (feature maps) and arrows (operations).

    Colours as in :func:`model_diagram`: the U-Net's feature maps ``enc{k}_act``, the bottleneck
    with the funnel, ``dec{k}_skip`` and the sequence ``sequence_act`` (blue), the skip SE blocks
    ``skip{k}_se`` (orange), and the paths of the paper's additions in :data:`ACCENT`; each box is
    labelled ``channels x height x width`` read from the model. The dashed arrow is the funnel (our
    reading: the SE-weighted top skip, average-pooled to the bottleneck).

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
        arrow((x_enc[level] + width, y), (x_se, y), colour=ACCENT)
        arrow((x_se + width, y), (x_dec[level], y), colour=ACCENT)
    yb = y_of(levels)
    box(x_bottom, yb, f"bottleneck ⊕ funnel\n{shape_of('funnel')}", FUNNEL, w=1.7)
    arrow((x_enc[-1] + width / 2, y_of(levels - 1) - 0.3), (x_bottom + 0.4, yb + 0.3))
    ax.text(x_enc[-1], yb + 0.45, "pool /2", fontsize=7)
    arrow((x_se + 0.05, y_of(0) - 0.22), (x_bottom + 1.05, yb + 0.3), colour=ACCENT, ls="--", lw=1.6)
    funnel_label = f"funnel: average-pool /{2 ** levels}\n→ {shape_of('funnel_pool')}"
    ax.text(x_se + 0.15, (y_of(1) + y_of(2)) / 2, funnel_label, color=ACCENT, fontsize=8, va="center")
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
    box(x_out, y_of(0), f"full convs\n→ sequence\n{shape_of('sequence_act')}", COLOURS["unet"], h=0.8, w=1.15)
    arrow((x_dec[0] + 1.05, y_of(0)), (x_out, y_of(0)))
    arrow((x_out + 1.15, y_of(0)), (x_out + 1.55, y_of(0)))
    ax.text(x_out + 1.6, y_of(0), "to the\nConvLSTM", fontsize=8, va="center")
    ax.set_xlim(-1.1, x_out + 2.45)
    ax.set_ylim(yb - 0.7, y_of(0) + 0.7)
    ax.axis("off")
    ax.set_title("sequence generator of LSTM-COR (channels × height × width)", fontsize=11)
    return fig
