"""What the command line shows: the library's messages in the command's words, and no backend chatter.

Errors and warnings of the library name its Python arguments; :func:`cli_words` puts the
command's flags in their place (:data:`FLAG_WORDS`), and lstmcor's own warnings are printed as
``lstmcor <command>: warning: ...``. :func:`_quiet_backend` keeps TensorFlow's C++ log lines out
of a normal run.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

# Python argument names in the library's messages, and what the command line calls them. Applied in
# order to every error and warning a command shows; the library keeps its own (Python) wording.
_FRACTIONS = "70/15/15"  # load_dataset's split_fractions, which the command line does not change
FLAG_WORDS: list[tuple[str, str]] = [
    (r"\(skip_bad=True\)", "(--skip-bad)"),
    (r"\bskip_bad=True\b", "--skip-bad"),
    (r"leave slice_index=None for 2D files", "leave out --slice for 2D files"),
    (r"\bslice_index=", "--slice "),
    (r"\baxis=", "--axis "),
    (r" or pass layout='nifti'\|'png'\|'npy' to choose \(other files then count as bad\)", ""),
    (r"\bn_pairs must be >= 0 or None\b", "--pairs must be >= 0 (0: every pair)"),
    (r"\bn_pairs=", "--pairs "),
    (r"\bepochs must be\b", "--epochs must be"),
    (r"\bsteps_per_epoch must be\b", "--steps-per-epoch must be"),
    (r"\bbatch_size must be\b", "--batch-size must be"),
    (r"add images or change split_fractions",
     f"add images (the command line splits the subjects {_FRACTIONS} into train, val and test)"),
    (r"\bsplit_fractions\b", f"the split fractions (fixed at {_FRACTIONS} on the command line)"),
    # NumPy's advice for a file that is not a plain .npy array names its own Python arguments
    (r"This file contains pickled \(object\) data\..*?`pickle\.load\(\)`\.",
     "not a plain NumPy array file; lstmcor never unpickles"),
]
# train and evaluate have no --slice: a folder of 3D volumes needs one 2D slice per file.
_FLAG_WORDS_2D = [(r"pass slice_index=<int> and axis=<0, 1 or 2> to take one slice of each volume",
                   "save one 2D slice per file (lstmcor train and evaluate read 2D images)")]


def cli_words(message: str, command: str = "register") -> str:
    """``message`` with the library's Python argument names replaced by the ``command``'s flags."""
    for pattern, flag in (_FLAG_WORDS_2D if command != "register" else []) + FLAG_WORDS:
        message = re.sub(pattern, flag, message)
    return message


def _show_warnings_as_cli(command: str):
    """A ``warnings.showwarning`` that prints lstmcor's own warnings as ``lstmcor <command>: warning: ...``."""
    package, default = Path(__file__).resolve().parents[1], warnings.showwarning  # lstmcor/

    def show(message, category, filename, lineno, file=None, line=None):
        try:
            ours = Path(filename).resolve().is_relative_to(package)
        except (OSError, ValueError):
            ours = False
        if not ours:
            return default(message, category, filename, lineno, file, line)
        print(f"lstmcor {command}: warning: {cli_words(str(message), command)}", file=file or sys.stderr)
    return show


def _skip_bad_data(args) -> None:
    """With ``--skip-bad``, load the data folder here, leaving bad files out; train and evaluate take the set."""
    if getattr(args, "skip_bad", False):
        from lstmcor.data import load_dataset

        args.data = load_dataset(args.data or "default", skip_bad=True)


# Lines TensorFlow writes to file descriptor 2 while it loads, whatever TF_CPP_MIN_LOG_LEVEL says
# (absl's preamble, oneDNN's notice as an I-line, CPU feature notes): dropped in a quiet run.
_CHATTER = re.compile(r"(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
                      r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
                      r"|To enable the following instructions: .*rebuild TensorFlow)")


def _backend_log_level(verbose: bool) -> str:
    """The ``TF_CPP_MIN_LOG_LEVEL`` of this command: the user's own if set, 0 when verbose, else 3."""
    import lstmcor

    if lstmcor._TF_LOG_LEVEL_FROM_USER is not None:
        return lstmcor._TF_LOG_LEVEL_FROM_USER
    if verbose or os.environ.get("LSTMCOR_VERBOSE", "").strip().lower() not in ("", "0", "false", "no"):
        return "0"
    return "3"


def _quiet_backend(verbose: bool) -> None:
    """Silence the backend's C++ log lines for this command, before Keras is imported.

    They are written by C++ to file descriptor 2, past Python's ``sys.stderr`` and ``warnings``:
    ``TF_CPP_MIN_LOG_LEVEL=3`` stops those TensorFlow filters (the I-, W- and E-lines of start-up
    and of the graph optimizer during training, e.g. "remapper failed"), and the few lines it
    writes while it loads regardless (oneDNN's notice) are caught by importing Keras once with
    fd 2 sent to a temporary file: every other line there is passed on, and all of it when the
    import fails. ``verbose`` or ``LSTMCOR_VERBOSE=1`` (level 0, nothing dropped) shows the chatter;
    a ``TF_CPP_MIN_LOG_LEVEL`` set by the user is kept (below 3, nothing is dropped). Nothing
    changes once Keras is imported (``main`` called from Python).
    """
    if "keras" in sys.modules:
        return
    level = _backend_log_level(verbose)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = level
    if level != "3":
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 to guard
        return
    failed = True
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import keras  # noqa: F401

            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if failed or not _CHATTER.match(line)))
            sys.stderr.flush()


