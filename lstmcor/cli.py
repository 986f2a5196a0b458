"""The ``lstmcor`` command line: train, evaluate and register.

Every sub-command shares its code with the Python API (:func:`lstmcor.training.train`,
:func:`lstmcor.evaluation.evaluate`, :func:`lstmcor.registration.register`). Bad files, shapes or weights
end with one line on stderr and exit status 2, never a traceback.

``lstmcor train`` never destroys a run: a ``--out`` that holds one is refused unless ``--resume``
continues it or ``--overwrite`` replaces it, and the default ``--out`` is a new folder
``runs/<model>-<preset>-<YYYYmmdd-HHMMSS>``. Ctrl-C (SIGINT) and SIGTERM (``kill``, a batch
system's time limit) stop training the same way: the last finished epoch stays committed, one line
says how to resume, and the exit status is 130 for SIGINT, 143 for SIGTERM (128 + the signal's
number, as a shell reports it).
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import numpy as np

from lstmcor.settings import ABLATIONS, LAMBDA, LEARNING_RATE, MODEL_NAMES, PRESET_NAMES

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

Images are scaled to [0, 1] and centre-padded or cropped to the model's size; the outputs are
put back on the fixed image's grid and written as NIfTI with the fixed image's affine (identity
for PNG and NumPy inputs). The flow file holds the displacement in pixels, [H, W, 2], channel 0
along the first array axis: moved(p) = moving(p + flow(p)).
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
    ev.add_argument("--split", default="test", choices=["train", "val", "test"], help="split (default test)")
    ev.add_argument("--pairs", type=int, default=32, help="number of seeded pairs (default 32; 0 = all)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the pairs (default 0)")
    ev.add_argument("--classical", action="store_true", help="add SyN (DIPY); about a second per pair")
    ev.add_argument("--out", default=None, help="folder for the results (default: beside the first weights)")

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
    if args.model not in (None, "lstmcor"):
        if changed:
            raise ValueError(f"the ablation switches ({', '.join(changed)}) apply to --model lstmcor only.")
        options = {}
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
                       lam=args.lam, seed=args.seed, resume=args.resume, overwrite=args.overwrite,
                       augment=args.augment, model_options=options or None)
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
    out = args.out or str(Path(args.weights[0]).parent / "evaluation")
    result = evaluate(dict(zip(names, args.weights)), args.data, args.split, args.pairs or None, args.seed,
                      classical=args.classical, out=out)
    print(result.table())
    print(f"\nper-pair results: {Path(out) / 'pairs.csv'}; summary: {Path(out) / 'summary.json'}")
    return 0


def _register(args) -> int:
    from lstmcor.data import pad_or_crop, read_image
    from lstmcor.data.io import write_image
    from lstmcor.registration import register
    from lstmcor.saving import load_model

    moving, _ = read_image(args.moving, args.slice_index, args.axis)
    fixed, affine = read_image(args.fixed, args.slice_index, args.axis)
    if moving.shape != fixed.shape:
        raise ValueError(f"moving is {moving.shape[0]} x {moving.shape[1]} but fixed is {fixed.shape[0]} x "
                         f"{fixed.shape[1]}: resample them to one grid first.")
    if args.moved_labels and not args.moving_labels:
        raise ValueError("--moved-labels needs --moving-labels.")
    model = load_model(args.weights)
    size = tuple(int(s) for s in model.inputs[0].shape[1:3])
    labels = None
    if args.moving_labels:
        labels, _ = read_image(args.moving_labels, args.slice_index, args.axis, labels=True)
        if labels.shape != moving.shape:
            raise ValueError(f"labels '{args.moving_labels}' are {labels.shape} but the moving image is "
                             f"{moving.shape}.")
        labels = pad_or_crop(labels, target_shape=size)
    result = register(model, pad_or_crop(moving, target_shape=size), pad_or_crop(fixed, target_shape=size), labels)
    back = fixed.shape
    write_image(args.output, pad_or_crop(result["moved"][0, ..., 0], target_shape=back).astype("float32"), affine)
    print(f"moved image: {args.output}")
    if args.flow:
        flow = np.stack([pad_or_crop(result["flow"][0, ..., c], target_shape=back) for c in range(2)], axis=-1)
        write_image(args.flow, flow.astype("float32"), affine)
        print(f"displacement field (pixels, [H, W, 2]): {args.flow}")
    if labels is not None:
        target = args.moved_labels or str(Path(args.output).with_name("moved_labels.nii.gz"))
        write_image(target, pad_or_crop(result["moved_labels"], target_shape=back).astype("int16"), affine)
        print(f"moved labels: {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lstmcor`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return {"train": _train, "evaluate": _evaluate, "register": _register}[args.command](args)
    except (ValueError, FileNotFoundError, FloatingPointError, OSError) as error:
        print(f"lstmcor {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM during training (Terminated)
        print(_interrupted(args, error), file=sys.stderr)
        return 143 if isinstance(error, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
