"""Pictures for the course: image panels, label overlays, displacement fields, warped grids, and
the whole network on one page (:func:`model_diagram`, from :mod:`lstmcor.diagrams`).

Everything returns the Matplotlib figure, so a notebook can ``plt.show()`` it and a script can
save it. Images are ``[H, W]`` arrays shown upright (row 0 at the top).
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from lstmcor.diagrams import model_diagram  # noqa: F401  (the whole network on one page)
from lstmcor.metrics import jacobian_determinant

LABEL_COLOURS = np.array(
    [[0, 0, 0], [0.25, 0.55, 0.95], [0.95, 0.55, 0.15], [0.95, 0.95, 0.85], [0.6, 0.3, 0.8], [0.3, 0.8, 0.4]]
)


def _squeeze(image) -> np.ndarray:
    image = np.asarray(image)
    while image.ndim > 2 and image.shape[0] == 1:
        image = image[0]
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return image


def show_images(images: Sequence, titles: Sequence[str] | None = None, cmap: str = "gray",
                size: float = 2.6, vmin=0.0, vmax=1.0, suptitle: str | None = None):
    """A row of images with titles. Difference images (titles starting with 'diff') use a diverging map."""
    images = [_squeeze(im) for im in images]
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size * 1.15), squeeze=False)
    for k, (ax, image) in enumerate(zip(axes[0], images)):
        title = titles[k] if titles else ""
        if title.lower().startswith("diff"):
            limit = float(np.abs(image).max()) or 1.0
            ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
        else:
            ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def label_rgb(labels: np.ndarray) -> np.ndarray:
    """Colour an integer label map (0 = black background)."""
    labels = _squeeze(labels).astype(int)
    colours = LABEL_COLOURS[np.clip(labels, 0, len(LABEL_COLOURS) - 1)]
    return colours


def overlay_labels(image: np.ndarray, labels: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a label map over a grey image, as an RGB array."""
    grey = np.repeat(_squeeze(image)[..., None], 3, axis=-1)
    mask = (_squeeze(labels) > 0)[..., None]
    return np.where(mask, (1 - alpha) * grey + alpha * label_rgb(labels), grey)


def registration_panels(moving, fixed, moved, titles=("moving", "fixed", "moved"), with_difference: bool = True,
                        suptitle: str | None = None):
    """Moving, fixed and moved, plus the differences to the fixed image before and after."""
    images = [moving, fixed, moved]
    names = list(titles)
    if with_difference:
        images += [_squeeze(moving) - _squeeze(fixed), _squeeze(moved) - _squeeze(fixed)]
        names += ["diff before", "diff after"]
    return show_images(images, names, suptitle=suptitle)


def flow_to_rgb(flow: np.ndarray, max_norm: float | None = None) -> np.ndarray:
    """Colour-wheel picture of a field: hue is the direction, brightness the length.

    Args:
        flow: ``[H, W, 2]`` (channel 0 along rows).
        max_norm: length shown at full brightness (default: the longest vector).

    Returns:
        ``[H, W, 3]`` RGB in [0, 1].
    """
    from matplotlib.colors import hsv_to_rgb

    flow = _squeeze(flow)
    dy, dx = flow[..., 0], flow[..., 1]
    norm = np.hypot(dy, dx)
    scale = max_norm or float(norm.max()) or 1.0
    hue = (np.arctan2(-dy, dx) / (2 * np.pi)) % 1.0  # up = 90 degrees, as on a map
    hsv = np.stack([hue, np.ones_like(hue), np.clip(norm / scale, 0, 1)], axis=-1)
    return hsv_to_rgb(hsv)


def colour_wheel(size: int = 64) -> np.ndarray:
    """The key of :func:`flow_to_rgb`: a disc coloured by direction and length."""
    r = np.linspace(-1, 1, size)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    wheel = flow_to_rgb(np.stack([dy, dx], -1), max_norm=1.0)
    wheel[np.hypot(dy, dx) > 1] = 1.0
    return wheel


def plot_quiver(ax, flow: np.ndarray, step: int = 8, background: np.ndarray | None = None, colour: str = "tab:red"):
    """Arrows of a field every ``step`` pixels, drawn where each pixel samples from."""
    flow = _squeeze(flow)
    h, w = flow.shape[:2]
    if background is not None:
        ax.imshow(_squeeze(background), cmap="gray", vmin=0, vmax=1)
    rows, cols = np.mgrid[step // 2:h:step, step // 2:w:step]
    ax.quiver(cols, rows, flow[rows, cols, 1], flow[rows, cols, 0], color=colour, angles="xy",
              scale_units="xy", scale=1.0, width=0.004)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def plot_grid(ax, flow: np.ndarray, step: int = 8, colour: str = "black", linewidth: float = 0.6):
    """A regular grid deformed by ``x -> x + D(x)``: each line drawn through its sample points."""
    flow = _squeeze(flow)
    h, w = flow.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w].astype(float)
    y, x = rows + flow[..., 0], cols + flow[..., 1]
    for r in range(0, h, step):
        ax.plot(x[r, :], y[r, :], color=colour, linewidth=linewidth)
    for c in range(0, w, step):
        ax.plot(x[:, c], y[:, c], color=colour, linewidth=linewidth)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def field_summary(flow: np.ndarray, background: np.ndarray | None = None, step: int = 8, suptitle: str | None = None):
    """Four views of one field: arrows, colour wheel, warped grid, Jacobian determinant."""
    flow = _squeeze(flow)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
    plot_quiver(axes[0], flow, step, background)
    axes[0].set_title("arrows")
    axes[1].imshow(flow_to_rgb(flow))
    axes[1].set_title("direction (hue), length (brightness)")
    axes[1].axis("off")
    inset = axes[1].inset_axes([0.78, 0.0, 0.22, 0.22])
    inset.imshow(colour_wheel())
    inset.axis("off")
    plot_grid(axes[2], flow, step)
    axes[2].set_title("warped grid")
    det = jacobian_determinant(flow)
    limit = max(1e-3, float(np.abs(det - 1).max()))
    im = axes[3].imshow(det, cmap="RdBu_r", vmin=1 - limit, vmax=1 + limit)
    axes[3].contour(det <= 0, levels=[0.5], colors="black", linewidths=0.8)
    axes[3].set_title(f"det J (folds: {int((det <= 0).sum())} px)")
    axes[3].axis("off")
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def moving_average(values: Sequence[float], window: int = 5) -> np.ndarray:
    """Trailing moving average (the smoothing of the paper's Fig. 5); shorter at the start."""
    values = np.asarray(values, dtype="float64")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}.")
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(values.size):
        lo = max(0, i + 1 - window)
        out[i] = (cumulative[i + 1] - cumulative[lo]) / (i + 1 - lo)
    return out


def loss_curves(logs: dict[str, dict[str, np.ndarray]], key: str = "loss", window: int = 5):
    """The paper's Fig. 5: raw loss per epoch (left) and its moving average (right), one line per run."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for name, log in logs.items():
        epochs = log.get("epoch", np.arange(len(log[key]))) + 1
        axes[0].plot(epochs, log[key], label=name)
        axes[1].plot(epochs, moving_average(log[key], window), label=name)
    axes[0].set_title(f"training {key}")
    axes[1].set_title(f"moving average ({window} epochs)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(key)
    axes[1].legend()
    fig.tight_layout()
    return fig


def live_view(view, **controls):
    """An interactive view for notebooks: the controls above an output area that redraws on change.

    ``view(**values)`` draws the picture for the controls' current values. Nothing is drawn
    while the cell itself runs, so a batch run (papermill, ``make book``) never waits on widget
    output, which can hang ``ipywidgets.interact`` under nbclient; put a static call of ``view``
    with the default values in the next cell for the book.

    Args:
        view: a function that draws (and shows) one picture.
        **controls: ipywidgets controls, one per argument of ``view``.

    Returns:
        The widget to display.
    """
    import ipywidgets as widgets

    out = widgets.Output()

    def redraw(_=None):
        with out:
            out.clear_output(wait=True)
            view(**{name: control.value for name, control in controls.items()})
            plt.show()

    for control in controls.values():
        control.observe(redraw, "value")
    return widgets.VBox([widgets.HBox(list(controls.values())), out])
