# Exercise 5.1: one point by hand - solution (loaded by tools/run_course.py for the book and CI)
top = 10 * (1 - 0.8) + 20 * 0.8          # row 0 at x = 0.8: 18
bottom = 30 * (1 - 0.8) + 40 * 0.8       # row 1 at x = 0.8: 38
answer_51 = top * (1 - 0.3) + bottom * 0.3
print(answer_51)
