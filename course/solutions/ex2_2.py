# Exercise 2.2: how far does the funnel pool? - solution (loaded by tools/run_course.py for the book and CI)
def funnel_factor(levels):
    return 2 ** levels


def funnel_shape(H, W, levels):
    return H // funnel_factor(levels), W // funnel_factor(levels)
