# Exercise 4.1: count the parameters - solution (loaded by tools/run_course.py for the book and CI)
depthwise_params = 3 * 3 * 64 + 64          # one 3x3 kernel per channel + one bias per channel
ordinary_params = 3 * 3 * 64 * 64 + 64      # a 3x3x64 kernel per output + one bias per output
