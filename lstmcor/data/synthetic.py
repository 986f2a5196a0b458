"""The synthetic ground truth of the embedded set: known deformations between pseudo-subjects.

A pseudo-subject is ``subject(x) = base(psi(x))`` with ``psi(x) = phi(A x)``: ``A`` a small affine
and ``phi = exp(v)`` the diffeomorphism of a smooth stationary velocity ``v`` (a cubic B-spline).
Two pseudo-subjects of the same real brain therefore have a known correspondence, which
:class:`SyntheticTruth` computes on demand. NumPy and SciPy only; ``data/make_dataset.py`` uses
the same functions to make the set, so the truth and the images cannot drift apart.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

def _bspline_upsample(coarse: np.ndarray, shape: tuple[int, int], spacing: int) -> np.ndarray:
    """Cubic B-spline field ``[2, H, W]`` from control values ``[2, gh, gw]`` spaced ``spacing`` px.

    Control point (a, b) sits at pixel (a * spacing - spacing, b * spacing - spacing) so that the
    grid covers the image with one control point of margin on each side.
    """
    h, w = shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = np.stack([rr / spacing + 1.0, cc / spacing + 1.0])
    return np.stack([ndimage.map_coordinates(np.asarray(c, np.float64), coords, order=3,
                                             mode="nearest", prefilter=False) for c in coarse])


def _integrate_velocity(velocity: np.ndarray, steps: int = 7) -> np.ndarray:
    """Scaling and squaring: displacement ``[2, H, W]`` of exp(v) for a stationary velocity."""
    h, w = velocity.shape[1:]
    grid = np.mgrid[0:h, 0:w].astype(np.float64)
    disp = np.asarray(velocity, np.float64) / (2.0 ** steps)
    for _ in range(steps):
        coords = grid + disp
        disp = disp + np.stack([ndimage.map_coordinates(d, coords, order=1, mode="nearest")
                                for d in disp])
    return disp


def _apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 matrix (rows, cols; about the image centre already folded in) to [2, ...]."""
    m = np.asarray(matrix, np.float64)
    return (np.tensordot(m[:, :2], points, axes=(1, 0))
            + m[:, 2].reshape((2,) + (1,) * (points.ndim - 1)))


def _invert_affine(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, np.float64)
    a_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([a_inv, -(a_inv @ m[:, 2])[:, None]], axis=1)


def _sample_field(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Linear interpolation of a ``[2, H, W]`` field at ``[2, ...]`` points (border value outside)."""
    return np.stack([ndimage.map_coordinates(f, points, order=1, mode="nearest") for f in field])


def subject_transform(coarse_velocity: np.ndarray, affine: np.ndarray, shape=(160, 192),
                      spacing: int = 16, steps: int = 7):
    """The pull-back map of one pseudo-subject and its inverse.

    A pseudo-subject is ``subject(x) = base(psi(x))`` with ``psi(x) = phi(A x)``: ``A`` a small
    affine (2 x 3, in pixel coordinates) and ``phi = exp(v)`` the diffeomorphism of a smooth
    stationary velocity ``v`` (cubic B-spline from ``coarse_velocity``). Returns the
    displacement fields ``u`` of ``phi`` and ``w`` of ``phi^-1 = exp(-v)``, each ``[2, H, W]``.
    """
    v = _bspline_upsample(coarse_velocity, shape, spacing)
    return _integrate_velocity(v, steps), _integrate_velocity(-v, steps)


def subject_pullback(u: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Coordinates ``psi(x) = phi(A x)`` for every pixel x, as ``[2, H, W]``."""
    h, w = u.shape[1:]
    grid = np.mgrid[0:h, 0:w].astype(np.float64)
    y = _apply_affine(affine, grid)
    return y + _sample_field(u, y)


def pair_displacement(u_fixed, affine_fixed, w_moving, affine_moving) -> np.ndarray:
    """D with ``moving(p + D(p)) = fixed(p)`` for two pseudo-subjects of the same base brain.

    fixed(p) = base(psi_f(p)) and moving(q) = base(psi_m(q)), so q = psi_m^-1(psi_f(p)) with
    psi_m^-1(z) = A_m^-1 (z + w_m(z)). Returned as ``[H, W, 2]`` float32 in pixels.
    """
    h, w = u_fixed.shape[1:]
    grid = np.mgrid[0:h, 0:w].astype(np.float64)
    z = subject_pullback(u_fixed, affine_fixed)
    q = _apply_affine(_invert_affine(affine_moving), z + _sample_field(w_moving, z))
    return np.moveaxis(q - grid, 0, -1).astype(np.float32)



@dataclasses.dataclass
class SyntheticTruth:
    """How each image of the embedded set was made, and the true fields that follow from it.

    One entry per image ``k``: ``base[k]`` indexes ``base_names`` (the real brain it was made
    from), ``velocity[k]`` ``[2, gh, gw]`` the B-spline control values of ``v`` and ``affine[k]``
    ``[2, 3]`` the matrix ``A`` (pixel coordinates). ``shape``, ``spacing`` and ``steps`` are the
    image size, the control-point spacing in pixels and the scaling-and-squaring steps.

    Example:
        >>> from lstmcor.data import load_default
        >>> truth = load_default().truth
        >>> truth.pair_displacement(0, 1).shape  # None if images 0 and 1 came from different brains
        (160, 192, 2)
    """

    base: np.ndarray
    base_names: list[str]
    velocity: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int]
    spacing: int
    steps: int
    _fields_cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return int(len(self.base))

    def _check(self, k: int) -> int:
        if not 0 <= int(k) < len(self):
            raise IndexError(f"image index {k} out of range for a set of {len(self)} images")
        return int(k)

    def take(self, index) -> "SyntheticTruth":
        """The truth of the images ``index`` (in that order), e.g. for one split."""
        index = np.asarray(index, dtype=np.int64)
        return SyntheticTruth(self.base[index], list(self.base_names), self.velocity[index], self.affine[index],
                              tuple(self.shape), int(self.spacing), int(self.steps))

    def fields(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Displacements ``u`` of ``phi`` and ``w`` of ``phi^-1`` of image ``k``, each ``[2, H, W]``."""
        k = self._check(k)
        if k not in self._fields_cache:
            if len(self._fields_cache) > 256:
                self._fields_cache.clear()
            self._fields_cache[k] = subject_transform(self.velocity[k], self.affine[k], shape=tuple(self.shape),
                                                      spacing=int(self.spacing), steps=int(self.steps))
        return self._fields_cache[k]

    def base_name(self, k: int) -> str:
        """Name of the real brain image ``k`` was made from."""
        return str(self.base_names[int(self.base[self._check(k)])])

    def pair_displacement(self, moving: int, fixed: int) -> np.ndarray | None:
        """Known D ``[H, W, 2]`` with ``moving(p + D(p)) ~= fixed(p)``; None across real brains."""
        moving, fixed = self._check(moving), self._check(fixed)
        if int(self.base[moving]) != int(self.base[fixed]):
            return None
        u_f, _ = self.fields(fixed)
        _, w_m = self.fields(moving)
        return pair_displacement(u_f, self.affine[fixed], w_m, self.affine[moving])

    def subject_displacement(self, k: int) -> np.ndarray:
        """D ``[H, W, 2]`` with ``base(p + D(p)) = image k(p)``: how far image k is from its brain."""
        u, _ = self.fields(k)
        h, w = u.shape[1:]
        grid = np.mgrid[0:h, 0:w].astype(np.float64)
        return np.moveaxis(subject_pullback(u, self.affine[int(k)]) - grid, 0, -1).astype(np.float32)
