# Exercise 1.1: SE in NumPy - solution (loaded by tools/run_course.py for the book and CI)
def my_se(X, W1, W2):
    z = X.mean(axis=(1, 2))
    s = 1.0 / (1.0 + np.exp(-(np.maximum(z @ W1.T, 0.0) @ W2.T)))
    return X * s[:, None, None, :]
