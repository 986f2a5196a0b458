"""The ``lstmcor`` command line: train, evaluate, register and sweep.

Every sub-command shares its code with the Python API (:func:`lstmcor.training.train`,
:func:`lstmcor.evaluation.evaluate`, :func:`lstmcor.registration.register`, :func:`lstmcor.sweep.sweep`).
Bad files, shapes or weights end with one line on stderr and exit status 2, never a traceback; the
line names the command's flags (``--skip-bad``, ``--slice``), not the Python arguments behind them
(:data:`FLAG_WORDS`).

``lstmcor train`` never destroys a run: a ``--out`` that holds one is refused unless ``--resume``
continues it or ``--overwrite`` replaces it, and the default ``--out`` is a new folder
``runs/<model>-<preset>-<YYYYmmdd-HHMMSS>``. Ctrl-C (SIGINT) and SIGTERM (``kill``, a batch
system's time limit) stop training the same way: the last finished epoch stays committed, one line
says how to resume, and the exit status is 130 for SIGINT, 143 for SIGTERM (128 + the signal's
number, as a shell reports it).

A normal run prints no backend chatter (TensorFlow's C++ start-up and optimizer log lines): the
command raises ``TF_CPP_MIN_LOG_LEVEL`` to 3 and drops the few lines TensorFlow writes while it
loads whatever that level says. ``--verbose`` (or ``LSTMCOR_VERBOSE=1``) shows them all again, and
a ``TF_CPP_MIN_LOG_LEVEL`` you set yourself is kept.

The package is split by concept: :mod:`lstmcor.cli.parser` (the flags and the examples of
``--help``), :mod:`lstmcor.cli.commands` (what each sub-command does) and
:mod:`lstmcor.cli.messages` (messages in the command's words, no backend chatter). Their names
are importable from here too, as they were from the single module ``lstmcor/cli.py``.
"""
from __future__ import annotations

import sys
import time  # noqa: F401  (lstmcor.cli.time: the clock of the default folder names, for tests to set)
import warnings

from lstmcor.cli.commands import (  # noqa: F401  (re-exported: lstmcor.cli.<name>)
    Terminated, _check_outputs, _default_evaluation_folder, _evaluate, _interrupted, _register, _same_file, _sweep,
    _train,
)
from lstmcor.cli.messages import (  # noqa: F401
    _CHATTER, _FLAG_WORDS_2D, _FRACTIONS, FLAG_WORDS, _backend_log_level, _quiet_backend, _show_warnings_as_cli,
    _skip_bad_data, cli_words,
)
from lstmcor.cli.parser import EPILOG_EVALUATE, EPILOG_REGISTER, EPILOG_SWEEP, EPILOG_TRAIN, _parser  # noqa: F401

__all__ = ["FLAG_WORDS", "Terminated", "cli_words", "main"]
_COMMANDS = {"train": _train, "evaluate": _evaluate, "register": _register, "sweep": _sweep}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lstmcor`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _quiet_backend(args.verbose)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warnings_as_cli(args.command)
            _skip_bad_data(args)
            return _COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, FloatingPointError, OSError) as error:
        print(f"lstmcor {args.command}: error: {cli_words(str(error), args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM during training (Terminated)
        print(_interrupted(args, error), file=sys.stderr)
        return 143 if isinstance(error, Terminated) else 130

