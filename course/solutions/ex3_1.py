# Exercise 3.1: shapes after Eq. (6) - solution (loaded by tools/run_course.py for the book and CI)
shape_after_eq6 = (8, 16, 160, 192, 1)
shape_to_flow_head = (8, 160, 192, 16 * 4)
