# Exercise 8.1: what the SE skips weigh - solution (loaded by tools/run_course.py for the book and CI)
# One SE block on C channels: W1 is (C/r) x C and W2 is C x (C/r), no biases.
answer_81 = sum(2 * c * max(1, c // 8) for c in [16, 32, 32, 32])
print(f"16 channels: 2 * 16 * 2 = 64; 32 channels: 2 * 32 * 4 = 256, three times; total {answer_81}")
