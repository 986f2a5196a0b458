# Exercise 9.2: (experiment): how many squarings are enough? - solution (loaded by tools/run_course.py for the book and CI)
def squaring_experiment(velocity, steps):
    d_plus = ops.convert_to_numpy(integrate(velocity[None], steps=steps))[0]
    d_minus = ops.convert_to_numpy(integrate(-velocity[None], steps=steps))[0]
    composed = d_plus + warp(d_minus, d_plus)
    return 100 * folding_fraction(d_plus), float(np.linalg.norm(composed, axis=-1).mean())


velocity_92 = smooth_velocity(12.0, sigma=4.0)
print(f"[{PRESET}] velocity of largest length 12 px; inverse error = mean |d+ + d- o (id + d+)|")
print("  squarings   folding %   inverse error (px)")
for steps in (0, 1, 2, 4, 7):
    fold, inverse_error = squaring_experiment(velocity_92, steps)
    print(f"  {steps:9d}   {fold:9.3f}   {inverse_error:.4f}")
