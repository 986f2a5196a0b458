# Exercise 5.2: warp labels, compute Dice - solution (loaded by tools/run_course.py for the book and CI)
m52, f52 = same_brain[1]
warped_52 = warp(ds.labels[m52], ds.true_displacement(m52, f52), "nearest")
dice_52 = mean_dice(ds.labels[f52], warped_52)
print(f"[{PRESET}] pair {m52} -> {f52}: mean Dice after the true warp = {dice_52:.3f}")
