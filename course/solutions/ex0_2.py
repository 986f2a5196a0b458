# Exercise 0.2: MSE, a preview of Eq. (21) - solution (loaded by tools/run_course.py for the book and CI)
answer_mse = float(np.mean((ds.images[syn_rows[0]["f"]] - syn_rows[0]["moved"]) ** 2))
