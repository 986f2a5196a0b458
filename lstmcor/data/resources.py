"""Where the course's files live: the embedded set and the shipped weights in ``data/``.

They live in the repository's ``data/`` folder, not in the package, so they are found beside the
package (a checkout or an editable install) or, after a regular ``pip install .``, from the
working directory and its parents (Jupyter runs a chapter in ``course/``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_FILENAME = "lstmcor_brains2d.npz"
_REPOSITORY = Path(__file__).resolve().parent.parent.parent


def find_in_repository(*parts: str) -> Path:
    """A path of the repository, such as ``data/weights``, found from an installed package too.

    Args:
        parts: the path inside the repository, e.g. ``("data", "weights")``.

    Returns:
        The first existing match (beside the package, then the working directory and its
        parents), else the path beside the package (for error messages).

    Example:
        >>> find_in_repository("data", "weights").name
        'weights'
    """
    beside = _REPOSITORY.joinpath(*parts)
    if beside.exists():
        return beside
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if folder.joinpath(*parts).exists():
            return folder.joinpath(*parts)
    return beside


def default_data_path() -> Path:
    """Where the embedded set lives: ``$LSTMCOR_DATA_DIR`` if set, else ``data/`` of the repository."""
    env = os.environ.get("LSTMCOR_DATA_DIR")
    if env:
        return Path(env) / DEFAULT_FILENAME
    return find_in_repository("data", DEFAULT_FILENAME)


def weights_dir() -> Path:
    """Folder of the shipped trained weights: ``$LSTMCOR_WEIGHTS_DIR`` if set, else ``data/weights``."""
    env = os.environ.get("LSTMCOR_WEIGHTS_DIR")
    return Path(env) if env else find_in_repository("data", "weights")


BUDGETS = ("quick",)
"""Sub-folders of ``data/weights`` holding models trained with a smaller budget than the
folder's own (``quick``: the notebooks' ``quick`` preset, for chapter 09's variants)."""


def _budget_dir(budget: str | None) -> Path:
    if budget is None:
        return weights_dir()
    if budget not in BUDGETS:
        raise ValueError(f"unknown training budget {budget!r}: use None (data/weights) or one of {list(BUDGETS)}")
    return weights_dir() / budget


def shipped_weights(name: str, budget: str | None = None) -> Path:
    """Path of a shipped model, e.g. ``shipped_weights("lstmcor")`` -> ``data/weights/lstmcor.keras``.

    Args:
        name: the file's stem, e.g. ``"lstmcor"`` or ``"voxelmorph_diffeo"``.
        budget: None for ``data/weights``; ``"quick"`` for ``data/weights/quick`` (models trained
            with the ``quick`` preset, the budget of a classroom CPU).

    Example:
        >>> shipped_weights("voxelmorph_diffeo", budget="quick").parent.name
        'quick'
    """
    folder = _budget_dir(budget)
    path = folder / f"{name}.keras"
    if not path.is_file():
        available = list(shipped_variants(budget))
        raise FileNotFoundError(
            f"no shipped weights named {name!r} in '{folder}' (available: {available or 'none'}); "
            "train one with `lstmcor train` and pass its model.keras instead."
        )
    return path


def shipped_variants(budget: str | None = "quick") -> dict[str, Path]:
    """Every model shipped with one budget, by file stem, sorted by name.

    Example:
        >>> "voxelmorph_diffeo" in shipped_variants("quick")
        True
    """
    return {p.stem: p for p in sorted(_budget_dir(budget).glob("*.keras"))}


_SEEDED = re.compile(r"^(?P<variant>.+?)(?:_seed(?P<seed>\d+))?$")


def split_seed(stem: str) -> tuple[str, int]:
    """The naming of shipped trainings (``data/weights/train_weights.sh``): ``<variant>`` is seed 0,
    ``<variant>_seed<k>`` seed k.

    Example:
        >>> split_seed("lstmcor_seed2"), split_seed("lstmcor_no_funnel")
        (('lstmcor', 2), ('lstmcor_no_funnel', 0))
    """
    match = _SEEDED.match(stem)
    return match["variant"], int(match["seed"] or 0)


def shipped_seeds(name: str) -> dict[int, Path]:
    """The shipped trainings of one model, by seed (:func:`split_seed`): ``<name>.keras`` is seed 0,
    ``<name>_seed<k>.keras`` seed k. An empty dict when none is shipped.

    Example:
        >>> sorted(shipped_seeds("voxelmorph"))[:1]
        [0]
    """
    found = {}
    for path in weights_dir().glob(f"{name}*.keras"):
        variant, seed = split_seed(path.stem)
        if variant == name:
            found[seed] = path
    return dict(sorted(found.items()))
