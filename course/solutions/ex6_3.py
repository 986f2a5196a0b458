# Exercise 6.3: (experiment): ten steps without, and with, smoothness - solution (loaded by tools/run_course.py for the book and CI)
table_63 = {}
for lam in (0.0, 1.0):
    field = descend(lam)
    table_63[lam] = (mse_numpy(fixed, warp(moving, field)),
                     mean_dice(ds.labels[F], warp(ds.labels[M], field, "nearest")),
                     100 * folding_fraction(field))
print(f"[{PRESET}] {STEPS_63} steps from the zero field       MSE     mean Dice   folding %")
print(f"  no registration                           {mse_numpy(fixed, moving):.5f}   "
      f"{mean_dice(ds.labels[F], ds.labels[M]):.4f}")
for lam, (m, d, fold) in table_63.items():
    print(f"  lambda = {lam:g}                                {m:.5f}   {d:.4f}      {fold:.2f}")
