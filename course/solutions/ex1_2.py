# Exercise 1.2: the size of an SE block - solution (loaded by tools/run_course.py for the book and CI)
def se_hidden(C, r):
    return max(1, C // r)


def se_params(C, r):
    return 2 * C * se_hidden(C, r)
