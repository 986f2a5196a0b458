"""Running the course's exercise checks so that an open exercise gives a hint, not a traceback.

A chapter's check is a function that raises ``AssertionError`` with a hint when the student's
answer is wrong and prints a line beginning with ``Correct`` when it is right.
:func:`check` runs it: while the exercise is still open (the starter returns ``None`` or ``...``,
or the answer is wrong) it prints ``Not yet (Exercise N.k): <hint>`` and the notebook goes on, so
that "Run All" reaches the end of a chapter whose exercises are not done.

Where the course runs with its solutions filled in (``tools/run_course.py`` sets
``LSTMCOR_SOLUTIONS=1`` for ``make book`` and CI), a failing check raises instead, so a wrong
solution fails the build. Plain Python: importing it starts no backend.

Example:
    >>> def check_double(double):
    ...     assert double(2) == 4, "double(2) should be 4."
    ...     print("Correct: double doubles.")
    >>> check(check_double, lambda x: 2 * x, exercise="0.1")
    Correct: double doubles.
    True
    >>> check(check_double, lambda x: None, exercise="0.1", strict=False)
    Not yet (Exercise 0.1): double(2) should be 4.
    False
"""
from __future__ import annotations

import os
from typing import Callable

#: Set to "1" by tools/run_course.py when the solutions are in the notebook: checks then raise.
SOLUTIONS_ENV = "LSTMCOR_SOLUTIONS"


def solutions_filled_in() -> bool:
    """Whether this kernel runs the chapters with their solutions (``LSTMCOR_SOLUTIONS=1``)."""
    return os.environ.get(SOLUTIONS_ENV, "") == "1"


def check(check_fn: Callable[..., object], *args, exercise: str, strict: bool | None = None, **kwargs) -> bool:
    """Run ``check_fn(*args, **kwargs)``; True when it passes.

    Args:
        check_fn: the chapter's check; raises ``AssertionError`` (its message is the hint) when
            the answer is wrong, prints ``Correct: ...`` when it is right.
        *args, **kwargs: what the check is given (usually the student's function).
        exercise: the exercise's number, ``"N.k"``, named in the hint.
        strict: raise instead of printing the hint; default :func:`solutions_filled_in`.

    Returns:
        True when the check passed, False when it printed a hint.
    """
    strict = solutions_filled_in() if strict is None else strict
    try:
        check_fn(*args, **kwargs)
    except AssertionError as exc:
        if strict:
            raise
        hint = str(exc).strip() or "the check failed without a hint; compare your answer with the exercise."
        print(f"Not yet (Exercise {exercise}): {hint}")
        return False
    except Exception as exc:  # the starter's `...` or a half-written answer: a hint, not a traceback
        if strict:
            raise
        print(f"Not yet (Exercise {exercise}): your code raised {type(exc).__name__}: {exc}. "
              "Fill in the exercise cell above and run it, then this one.")
        return False
    return True
