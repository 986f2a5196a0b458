"""The ``lstmcor`` command line: train, evaluate and register.

Every sub-command shares its code with the Python API (:func:`lstmcor.training.train`,
:func:`lstmcor.evaluation.evaluate`, :func:`lstmcor.registration.register`). Bad files, shapes or weights
end with one line on stderr and exit status 2, never a traceback; the line names the command's flags
(``--skip-bad``, ``--slice``), not the Python arguments behind them (:data:`FLAG_WORDS`).

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
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path


from lstmcor.settings import ABLATIONS, LAMBDA, LEARNING_RATE, LOSSES, MODEL_NAMES, PRESET_NAMES

EPILOG_TRAIN = """examples:
  lstmcor train --model lstmcor --preset quick                 # into a new runs/lstmcor-quick-<date-time>
  lstmcor train --model voxelmorph --preset ci --out runs/vxm-ci
  lstmcor train --out runs/paper --resume                      # go on after an interruption, same settings
  lstmcor train --out runs/paper --resume --epochs 1200        # train a finished run further
  lstmcor train --model lstmcor --no-funnel --out runs/no-funnel  # an ablation

A --out that holds a run is refused unless --resume continues it or --overwrite deletes it.
On --resume, the settings left out are the run's (state.json); given ones must equal them.
Ctrl-C or SIGTERM stops training and keeps the last finished epoch (exit status 130 / 143).
"""
EPILOG_EVALUATE = """examples:
  lstmcor evaluate --weights runs/lstmcor/model.keras --data default
  lstmcor evaluate --weights data/weights/voxelmorph.keras data/weights/lstmcor.keras --classical --out runs/eval
"""
EPILOG_REGISTER = """examples:
  lstmcor register moving.nii.gz fixed.nii.gz --weights data/weights/lstmcor.keras -o moved.nii.gz --flow flow.nii.gz
  lstmcor register a.png b.png --weights data/weights/voxelmorph.keras -o moved.nii.gz
  lstmcor register vol1.nii.gz vol2.nii.gz --slice 96 --axis 1 --weights W -o moved.nii.gz

Images are scaled to [0, 1] (0.5th percentile to the 99.9th percentile of the pixels above it,
clipped). Images of another size than the model's are resampled to the model's grid for the
network (a note says so); the field is brought back to the images' grid and the original moving
image and labels are warped with it. The outputs are written as NIfTI with the fixed image's affine
(with --slice, the slice's own affine; identity for PNG and NumPy inputs), all or none: every
output path is checked first (no output may be an input or another output). The flow file
holds the displacement in pixels, [H, W, 2], channel 0 along the first array axis:
moved(p) = moving(p + flow(p)). Labels are warped by nearest neighbour and written with an
integer type that holds their ids.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstmcor",
        description="Unsupervised deformable registration of 2D brain MRI: LSTM-COR against VoxelMorph.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,register}")

    tr = sub.add_parser("train", help="train a model on pairs of a data set",
                        description="Train LSTM-COR or VoxelMorph unsupervised (MSE + lambda * Grad, Adam).",
                        epilog=EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--model", choices=MODEL_NAMES, default=None, help="network (default lstmcor)")
    tr.add_argument("--preset", choices=PRESET_NAMES, default=None,
                    help="ci: seconds; quick: minutes on a laptop CPU (default); paper: 900 epochs, for a GPU")
    tr.add_argument("--data", default=None, help="'default' (the embedded set; default) or a data folder")
    tr.add_argument("--skip-bad", action="store_true",
                    help="leave out the folder's unreadable or odd files, with a warning, instead of stopping")
    tr.add_argument("--out", default=None,
                    help="run folder (default: a new runs/<model>-<preset>-<YYYYmmdd-HHMMSS>)")
    tr.add_argument("--epochs", type=int, help="total epochs (overrides the preset)")
    tr.add_argument("--steps-per-epoch", type=int, help="batches per epoch (overrides the preset)")
    tr.add_argument("--batch-size", type=int, help="pairs per batch (overrides the preset; paper: 8)")
    tr.add_argument("--lr", type=float, default=None, help=f"Adam learning rate (default {LEARNING_RATE:g})")
    tr.add_argument("--lam", type=float, default=None,
                    help=f"smoothness weight lambda of Eq. 23 (default {LAMBDA:g})")
    tr.add_argument("--seed", type=int, default=None, help="seed of weights and pairs (default 0)")
    tr.add_argument("--resume", action="store_true",
                    help="continue the run in --out from its last checkpoint, with its settings")
    tr.add_argument("--overwrite", action="store_true",
                    help="delete the run in --out (checkpoint, state, log, model) and start anew")
    tr.add_argument("--augment", action="store_true", default=None,
                    help="random flips and gamma on training pairs")
    bp = tr.add_argument_group("beyond the paper (both networks)")
    bp.add_argument("--loss", choices=LOSSES, default=None,
                    help="image term: mse (Eq. 21, the paper's; default) or ncc (local normalised "
                         "cross-correlation, window 9: for pairs whose contrast differs; give it its own --lam)")
    bp.add_argument("--integration-steps", type=int, default=None, metavar="N",
                    help="0 (default): the head's output is the displacement, as in the paper; N > 0 (7 is usual): "
                         "it is a velocity integrated by N steps of scaling and squaring, so the map does not fold "
                         "(up to the discretisation)")
    bp.add_argument("--devices", default="1", metavar="N|all",
                    help="train data-parallel on N local devices or all of them (JAX backend; the batch must "
                         "divide evenly; several hosts: see lstmcor.distribute). Default 1")
    ab = tr.add_argument_group("ablations (LSTM-COR only)")
    for option, (paper, flag, off, help_text) in ABLATIONS.items():
        if isinstance(paper, bool):
            ab.add_argument(flag, dest=f"ablate_{option}", action="store_true", default=None, help=help_text)
        else:
            ab.add_argument(flag, dest=f"ablate_{option}", choices=[paper, off], default=None,
                            help=f"{help_text} (default {paper})")

    ev = sub.add_parser("evaluate", help="score trained models on test pairs (Table 1)",
                        description="Score models on inter-subject pairs of a split; prints the markdown table "
                                    "and writes pairs.csv, summary.json and table.md.",
                        epilog=EPILOG_EVALUATE, formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("--weights", nargs="+", required=True, help="one or more model.keras files")
    ev.add_argument("--names", nargs="+", help="row names, one per weights file (default: the file's folder)")
    ev.add_argument("--data", default="default", help="'default' or a data folder")
    ev.add_argument("--skip-bad", action="store_true",
                    help="leave out the folder's unreadable or odd files, with a warning, instead of stopping")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"], help="split (default test)")
    ev.add_argument("--pairs", type=int, default=32,
                    help="number of seeded pairs (default 32; 0 = all; at most every distinct pair once)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the pairs (default 0)")
    ev.add_argument("--classical", action="store_true", help="add SyN (DIPY); about a second per pair")
    ev.add_argument("--out", default=None,
                    help="folder for the results (default runs/evaluation-<YYYYmmdd-HHMMSS>)")

    rg = sub.add_parser("register", help="register one moving image to one fixed image",
                        description="Register MOVING to FIXED with trained weights.",
                        epilog=EPILOG_REGISTER, formatter_class=argparse.RawDescriptionHelpFormatter)
    rg.add_argument("moving", help="moving image (.nii, .nii.gz, .png or .npy)")
    rg.add_argument("fixed", help="fixed image (.nii, .nii.gz, .png or .npy)")
    rg.add_argument("--weights", required=True, help="model.keras from `lstmcor train` (or data/weights/*.keras)")
    rg.add_argument("-o", "--output", required=True, help="moved image to write (.nii or .nii.gz)")
    rg.add_argument("--flow", help="displacement field to write (.nii or .nii.gz)")
    rg.add_argument("--moving-labels", help="label map of the moving image, warped by nearest neighbour")
    rg.add_argument("--moved-labels", help="where to write the warped labels (.nii or .nii.gz)")
    rg.add_argument("--slice", type=int, dest="slice_index", help="slice of 3D volumes to register")
    rg.add_argument("--axis", type=int, default=2, help="axis of --slice (default 2)")
    for command in (tr, ev, rg):
        command.add_argument("--verbose", action="store_true",
                             help="show the backend's own log lines (TensorFlow's); also LSTMCOR_VERBOSE=1")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program runs so that it stops as Ctrl-C does."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _train(args) -> int:
    from lstmcor.training import default_run_folder, train

    options = {}  # only the switches given: the rest are the paper's, or the resumed run's
    for option, (paper, _, off, _) in ABLATIONS.items():
        value = getattr(args, f"ablate_{option}")
        if value is not None:
            options[option] = off if isinstance(paper, bool) else value
    changed = [ABLATIONS[k][1] for k, v in options.items() if v != ABLATIONS[k][0]]
    if args.integration_steps is not None:
        if args.integration_steps < 0:
            raise ValueError(f"--integration-steps must be 0 or more, got {args.integration_steps}.")
        options["integration_steps"] = args.integration_steps
    if args.model not in (None, "lstmcor"):
        if changed:
            raise ValueError(f"the ablation switches ({', '.join(changed)}) apply to --model lstmcor only.")
        options = {k: v for k, v in options.items() if k == "integration_steps"}
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out: the run folder to continue.")
    args.out = args.out or str(default_run_folder(args.model or "lstmcor", args.preset or "quick"))
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (main() called from a thread): no handler to install
        previous = None
    try:
        result = train(args.model, args.preset, args.data, args.out, epochs=args.epochs,
                       steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size, learning_rate=args.lr,
                       lam=args.lam, loss=args.loss, seed=args.seed, resume=args.resume, overwrite=args.overwrite,
                       augment=args.augment, model_options=options or None, devices=args.devices)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(f"trained {result.epochs_done} epochs in {result.seconds:.1f} s; model: {result.out / 'model.keras'}, "
          f"log: {result.out / 'log.csv'}")
    return 0


def _interrupted(args, error: KeyboardInterrupt) -> str:
    what = "terminated (SIGTERM)" if isinstance(error, Terminated) else "interrupted"
    if args.command != "train":
        return f"lstmcor {args.command}: {what}"
    out = Path(args.out) if getattr(args, "out", None) else None
    if out is not None and (out / "state.json").exists() and (out / "checkpoint.keras").exists():
        return (f"lstmcor train: {what}; the last finished epoch is saved: resume with "
                f"`lstmcor train --out {out} --resume`")
    where = f" in {out}" if out is not None else ""
    return (f"lstmcor train: {what} before the first epoch finished; nothing to resume{where}: start again "
            "(with --overwrite for the same --out)")


def _evaluate(args) -> int:
    from lstmcor.evaluation import evaluate

    names = args.names or [Path(w).parent.name if Path(w).name == "model.keras" else Path(w).stem for w in args.weights]
    if len(names) != len(args.weights):
        raise ValueError(f"--names has {len(names)} entries for {len(args.weights)} weights files.")
    if len(set(names)) != len(names):
        raise ValueError(f"row names {names} repeat: give distinct --names.")
    out = Path(args.out) if args.out else _default_evaluation_folder()
    result = evaluate(dict(zip(names, args.weights)), args.data, args.split, args.pairs or None, args.seed,
                      classical=args.classical, out=out)
    print(result.table())
    print(f"\nresults written to {out}: pairs.csv (per pair), summary.json, table.md")
    return 0


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, case-insensitive file systems
    except OSError:
        return False


def _check_outputs(args) -> dict[str, str]:
    """Every output path of ``register``, checked before anything is read, loaded or written.

    Returns ``{option: path}`` for the outputs to write. Raises ``ValueError`` (one line) when an
    output does not end in .nii/.nii.gz, is a folder, cannot have its folder created, or is an
    input or another output.
    """
    if args.moved_labels and not args.moving_labels:
        raise ValueError("--moved-labels needs --moving-labels.")
    outputs = {"-o": args.output}
    if args.flow:
        outputs["--flow"] = args.flow
    if args.moving_labels:
        outputs["--moved-labels"] = args.moved_labels or str(Path(args.output).with_name("moved_labels.nii.gz"))
    names = {"-o": "-o", "--flow": "--flow",
             "--moved-labels": "--moved-labels" if args.moved_labels else "the moved labels (default path; set "
                                                                           "--moved-labels)"}
    inputs = {"the moving image": args.moving, "the fixed image": args.fixed, "--weights": args.weights}
    if args.moving_labels:
        inputs["--moving-labels"] = args.moving_labels
    seen: list[tuple[str, str]] = []
    for option, path in outputs.items():
        what = f"{names[option]} '{path}'"
        if not path.endswith((".nii", ".nii.gz")):
            raise ValueError(f"output {what} must end in .nii or .nii.gz.")
        if os.path.isdir(path):
            raise ValueError(f"output {what} is a folder: give a file name ending in .nii or .nii.gz.")
        for source, input_path in inputs.items():
            if _same_file(path, input_path):
                raise ValueError(f"output {what} is {source} '{input_path}': writing it would destroy an input; "
                                 "choose another output path.")
        for other, other_path in seen:
            if _same_file(path, other_path):
                raise ValueError(f"outputs {names[other]} '{other_path}' and {what} are the same file: "
                                 "give each output its own path.")
        folder = Path(os.path.abspath(path)).parent
        existing = next(p for p in [folder, *folder.parents] if os.path.lexists(p))
        if not existing.is_dir():
            raise ValueError(f"cannot create the folder of output {what}: '{existing}' is a file, not a folder.")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"cannot write output {what}: no write permission in '{existing}'.")
        seen.append((option, path))
    return outputs


def _default_evaluation_folder() -> Path:
    """``runs/evaluation-<YYYYmmdd-HHMMSS>`` in the working folder (never beside the weights), not yet used."""
    base = Path("runs") / f"evaluation-{time.strftime('%Y%m%d-%H%M%S')}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def _register(args) -> int:
    from lstmcor.data import read_image
    from lstmcor.data.arrays import label_dtype
    from lstmcor.data.io import write_images
    from lstmcor.registration import register
    from lstmcor.saving import load_model

    outputs = _check_outputs(args)  # before reading, loading or writing anything
    moving, _ = read_image(args.moving, args.slice_index, args.axis)
    fixed, affine = read_image(args.fixed, args.slice_index, args.axis)
    if moving.shape != fixed.shape:
        raise ValueError(f"moving is {moving.shape[0]} x {moving.shape[1]} but fixed is {fixed.shape[0]} x "
                         f"{fixed.shape[1]}: resample them to one grid first.")
    labels = None
    if args.moving_labels:
        labels, _ = read_image(args.moving_labels, args.slice_index, args.axis, labels=True)
        if labels.shape != moving.shape:
            raise ValueError(f"labels '{args.moving_labels}' are {labels.shape} but the moving image is "
                             f"{moving.shape}.")
    model = load_model(args.weights)  # refuses a model that is not [moving, fixed] -> [moved, flow]
    size = tuple(int(s) for s in model.inputs[0].shape[1:3])
    if moving.shape != size:
        print(f"note: the images were resampled from {moving.shape[0]}x{moving.shape[1]} to the model's "
              f"{size[0]}x{size[1]} for the network; the outputs are on the images' {moving.shape[0]}x"
              f"{moving.shape[1]} grid.")
    result = register(model, moving, fixed, labels, resample=True)
    items = [(outputs["-o"], result["moved"][0, ..., 0].astype("float32"), affine)]
    if "--flow" in outputs:
        items.append((outputs["--flow"], result["flow"][0].astype("float32"), affine))
    if labels is not None:
        moved_labels = result["moved_labels"]
        items.append((outputs["--moved-labels"], moved_labels.astype(label_dtype(moved_labels)), affine))
    write_images(items)
    print(f"moved image: {outputs['-o']}")
    if "--flow" in outputs:
        print(f"displacement field (pixels, [H, W, 2]): {outputs['--flow']}")
    if labels is not None:
        print(f"moved labels: {outputs['--moved-labels']}")
    return 0


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
    package, default = Path(__file__).resolve().parent, warnings.showwarning

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
            return {"train": _train, "evaluate": _evaluate, "register": _register}[args.command](args)
    except (ValueError, FileNotFoundError, FloatingPointError, OSError) as error:
        print(f"lstmcor {args.command}: error: {cli_words(str(error), args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM during training (Terminated)
        print(_interrupted(args, error), file=sys.stderr)
        return 143 if isinstance(error, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
