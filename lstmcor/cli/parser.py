"""The argument parser of ``lstmcor`` and the examples its ``--help`` shows (no Keras import)."""
from __future__ import annotations

import argparse

from lstmcor.settings import (ABLATION_RUNS, ABLATIONS, LAMBDAS, LEARNING_RATE, LOSSES, MODEL_NAMES, PRESET_NAMES,
                              SWEEP_SPLITS)

LAMBDA_DEFAULTS = ", ".join(f"{lam:g} with {loss}" for loss, lam in LAMBDAS.items())

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
EPILOG_SWEEP = """examples:
  lstmcor sweep --models voxelmorph lstmcor --seeds 0 1 2                  # into a new runs/sweep-<date-time>
  lstmcor sweep --models lstmcor --seeds 0 1 2 --ablations no_funnel conv --out runs/ablations
  lstmcor sweep --models voxelmorph lstmcor --seeds 0 1 2 --integration-steps 7
  lstmcor sweep --models voxelmorph --seeds 0 1 --preset ci --pairs 2 --out runs/sweep-ci  # seconds
  lstmcor sweep --models voxelmorph --seeds 0 --loss ncc --lam 0.3 1 3 --split val   # choose lambda

Each variant is trained once per seed, in <out>/<variant>-s<seed>, then all are scored on the same
seeded test pairs. Written to --out: runs.csv (one row per variant and seed), table.md (mean +/- std
over seeds) and tests.md (each variant against the first: difference of mean Dice, its seed-to-seed
std, Wilcoxon p over the test pairs), and lambda.md when several --lam are swept. Choose lambda
with --split val (the validation pairs), so that the test pairs stay unseen until the report. Run
the same command again to continue a stopped sweep: the finished runs are kept, an unfinished one
is resumed.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstmcor",
        description="Unsupervised deformable registration of 2D brain MRI: LSTM-COR against VoxelMorph.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,register,sweep}")

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
                    help=f"smoothness weight lambda of Eq. 23 (default {LAMBDA_DEFAULTS})")
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
                         "cross-correlation, window 9: for pairs whose contrast differs; it has its own default --lam)")
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
                        description="Score models on pairs of different subjects of a split; prints the markdown table "
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
    _sweep_parser(sub)
    for command in (tr, ev, rg, sub.choices["sweep"]):
        command.add_argument("--verbose", action="store_true",
                             help="show the backend's own log lines (TensorFlow's); also LSTMCOR_VERBOSE=1")
    return parser




def _sweep_parser(sub) -> None:
    """``lstmcor sweep``: models x seeds (x ablations), trained, scored and compared (:func:`lstmcor.sweep.sweep`)."""
    sw = sub.add_parser(
        "sweep", help="train models over several seeds and test their differences against seed noise",
        description="Train every model (and LSTM-COR ablation) with every seed, score all runs on the same\n"
                    "test pairs, and say whether each difference to the first model exceeds the seed-to-seed\n"
                    "variation: one trained network is one draw. Prints the table (mean +/- std over seeds)\n"
                    "and the tests, and writes them to --out.",
        epilog=EPILOG_SWEEP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sw.add_argument("--models", nargs="+", choices=MODEL_NAMES, required=True, metavar="MODEL",
                    help=f"networks ({', '.join(MODEL_NAMES)}); the first is the reference of the tests")
    sw.add_argument("--seeds", nargs="+", type=int, required=True, metavar="SEED",
                    help="training seeds (three or more for a spread)")
    ablations = [name.removeprefix("lstmcor_") for name in ABLATION_RUNS]
    sw.add_argument("--ablations", nargs="+", default=None, metavar="NAME",
                    help=f"LSTM-COR ablations to add as variants: {', '.join(ablations)}")
    sw.add_argument("--preset", choices=PRESET_NAMES, default="quick",
                    help="training preset of every run (default quick)")
    sw.add_argument("--data", default="default", help="'default' (the embedded set) or a data folder")
    sw.add_argument("--out", default=None,
                    help="sweep folder (default: a new runs/sweep-<YYYYmmdd-HHMMSS>); an existing one is continued")
    sw.add_argument("--pairs", type=int, default=32,
                    help="seeded pairs of --split scored for every run, the same for all (default 32; 0 = all)")
    sw.add_argument("--lr", type=float, default=None, help=f"Adam learning rate (default {LEARNING_RATE:g})")
    sw.add_argument("--lam", type=float, nargs="+", default=None, metavar="LAM",
                    help=f"smoothness weight lambda (default {LAMBDA_DEFAULTS}); two or more train every variant once "
                         "per weight and write the one of highest Dice to lambda.md")
    sw.add_argument("--split", choices=SWEEP_SPLITS, default="test",
                    help="split scored (default test); choose lambda on val, then report on test")
    sw.add_argument("--loss", choices=LOSSES, default=None, help="image term: mse (default) or ncc")
    sw.add_argument("--integration-steps", type=int, default=None, metavar="N",
                    help="0 (default): displacement as in the paper; N > 0: a velocity integrated in N steps, "
                         "for every variant")
