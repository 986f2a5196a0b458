# Exercise 6.1: the smoothness of a linear field - solution (loaded by tools/run_course.py for the book and CI)
# Along rows, channel 0 changes by a and channel 1 by c0 at every pixel: the mean of the squares
# over both channels is (a^2 + c0^2) / 2. Along columns: (b^2 + d^2) / 2. The two axes are averaged:
answer_61 = (a**2 + b**2 + c0**2 + d**2) / 4
print(f"Grad = (a^2 + b^2 + c0^2 + d^2) / 4 = {answer_61:.6f}")
