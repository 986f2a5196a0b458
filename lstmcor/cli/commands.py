"""The sub-commands of ``lstmcor``: ``train``, ``evaluate``, ``register`` and ``sweep``, and how they stop.

Each takes the parsed arguments of :mod:`lstmcor.cli.parser` and calls the Python API; Keras is
imported inside them, so that ``lstmcor --help`` starts no backend. ``register`` checks every
output path before it reads anything (:func:`_check_outputs`). SIGTERM during training is raised
as :class:`Terminated`, a ``KeyboardInterrupt``, so it stops training as Ctrl-C does.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lstmcor.settings import ABLATIONS


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


def _default_evaluation_folder(kind: str = "evaluation") -> Path:
    """``runs/<kind>-<YYYYmmdd-HHMMSS>`` in the working folder (never beside the weights), not yet used."""
    base = Path("runs") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
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




def _sweep(args) -> int:
    from lstmcor.sweep import lambda_variants, sweep, variants

    variants(args.models, args.ablations)  # an unknown ablation is named before anything is trained
    lambda_variants(args.models, args.lam)  # and a negative or repeated lambda
    model_options = {}
    if args.integration_steps is not None:
        if args.integration_steps < 0:
            raise ValueError(f"--integration-steps must be 0 or more, got {args.integration_steps}.")
        model_options["integration_steps"] = args.integration_steps
    given = {"learning_rate": args.lr, "loss": args.loss}
    out = Path(args.out) if args.out else _default_evaluation_folder("sweep")
    result = sweep(args.models, args.seeds, args.ablations, preset=args.preset, data=args.data, out=out,
                   n_pairs=args.pairs or None, train_options={k: v for k, v in given.items() if v is not None},
                   model_options=model_options or None, lams=args.lam, split=args.split)
    print(f"\n{result.table}\n\n{result.tests}" + (f"\n\n{result.choice}" if result.choice else ""))
    written = "runs.csv (per run), table.md, tests.md" + (", lambda.md" if result.choice else "")
    print(f"\nresults written to {out}: {written}; runs in {out}/<variant>-s<seed>")
    return 0
