"""Command-line helpers for the tests only: a refused command, and the command in a fresh process.

Example:
    >>> from cli_helpers import fails
    >>> fails(["train", "--resume"], capsys, "--resume needs --out")  # doctest: +SKIP
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Python argument names the command line does not have: none may reach a user of the CLI
PYTHON_NAMES = re.compile(r"skip_bad|slice_index|split_fractions|n_pairs|layout=|steps_per_epoch|batch_size|\baxis="
                          r"|allow_pickle")


def fails(argv: list[str], capsys, *patterns: str) -> str:
    """Run ``lstmcor <argv>`` in this process and check it is refused as the command line promises.

    Exit status 2 and one line on stderr, ``lstmcor <command>: error: ...``, with no traceback and no
    Python argument name (:data:`PYTHON_NAMES`), holding every one of ``patterns``. Returns the line.
    """
    from lstmcor.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"lstmcor {argv[0]}: error: "), err
    for pattern in patterns:
        assert pattern in err, err
    assert not PYTHON_NAMES.search(err), err
    return err


def run_cli(*args: str | os.PathLike, cwd: str | os.PathLike = ROOT, timeout: float = 600,
            **env_extra: str) -> subprocess.CompletedProcess:
    """``python -m lstmcor <args>`` in a fresh process (this checkout's package), its output captured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    return subprocess.run([sys.executable, "-m", "lstmcor", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
