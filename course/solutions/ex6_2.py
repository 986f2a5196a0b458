# Exercise 6.2: a field that does not fold - solution (loaded by tools/run_course.py for the book and CI)
answer_62 = min(lam for lam in LAMBDAS if results[lam]["folding"] == 0)
print(f"The smallest lambda without folding: {answer_62:g}")
