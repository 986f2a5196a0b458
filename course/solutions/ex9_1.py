# Exercise 9.1: scaling and squaring in NumPy - solution (loaded by tools/run_course.py for the book and CI)
def scaling_and_squaring(velocity, steps=7):
    """Displacement of exp(velocity) [H, W, 2] by scaling and squaring, in NumPy."""
    disp = np.asarray(velocity, dtype="float64") / 2.0**steps
    rows, cols = np.mgrid[0:disp.shape[0], 0:disp.shape[1]].astype("float64")
    for _ in range(steps):
        points = [rows + disp[..., 0], cols + disp[..., 1]]
        sampled = np.stack([ndimage.map_coordinates(disp[..., c], points, order=1, mode="nearest")
                            for c in range(2)], axis=-1)
        disp = disp + sampled      # d <- d + d o (id + d)
    return disp.astype("float32")
