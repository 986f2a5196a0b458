# Exercise 4.2: a depthwise convolution in NumPy - solution (loaded by tools/run_course.py for the book and CI)
def my_depthwise(x, kernel, bias):
    p = kernel.shape[0] // 2
    padded = np.pad(x, ((p, p), (p, p), (0, 0)))
    windows = sliding_window_view(padded, kernel.shape[:2], axis=(0, 1))   # [H, W, C, k, k]
    # channel c only meets kernel[:, :, c, 0]: no sum over channels
    return np.einsum("hwcij,ijc->hwc", windows, kernel[..., 0]) + bias
