# Exercise 5.3: (experiment): what does half a pixel do to labels? - solution (loaded by tools/run_course.py for the book and CI)
def subpixel_scores(image, labels, t):
    field = np.zeros((*image.shape, 2), "float32")
    field[..., 1] = t
    return mean_dice(labels, warp(labels, field, "nearest")), float(np.mean((image - warp(image, field)) ** 2))


shifts_53 = np.arange(9) / 8
scores_53 = [subpixel_scores(fixed, ds.labels[fixed_i], t) for t in shifts_53]
print(f"[{PRESET}] constant shift of t columns, fixed image #{fixed_i}")
print("   t     mean Dice (labels, nearest)   MSE (image, bilinear)")
for t, (d, m) in zip(shifts_53, scores_53):
    print(f"  {t:.3f}   {d:.4f}                        {m:.6f}")
unchanged = [t for t, (d, _) in zip(shifts_53, scores_53) if d == 1.0]
print(f"labels identical for t in {[float(t) for t in unchanged]}; "
      f"the MSE is already {scores_53[1][1]:.2e} at t = 1/8")
