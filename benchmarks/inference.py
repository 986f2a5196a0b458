"""Time LSTM-COR against VoxelMorph in one process: per pair (batch 1) and per training step.

The paper (section 3) reports 0.09 s per pair for LSTM-COR and 0.0459 s for VoxelMorph on a GPU,
a ratio of about 1.96. This script measures the same ratio on whatever machine runs it:

- both models are built at the same size, compiled with the package's loss (MSE + lambda Grad)
  and Adam(1e-3), and warmed up (the first calls trace and compile);
- inference: ``predict_on_batch`` on one pair (batch 1), the compiled path, timed pair by pair;
- training: ``train_on_batch`` on a batch of 8 pairs, timed step by step;
- the models take turns call by call, so load from other processes hits both alike;
- it prints the median and interquartile range of each, and the ratios LSTM-COR / VoxelMorph.

Run it from the repository root::

    python benchmarks/inference.py                       # TensorFlow (the default backend)
    KERAS_BACKEND=jax python benchmarks/inference.py     # JAX
    python benchmarks/inference.py --pairs 50 --json out.json

This is a benchmark that prints figures, not a test: nothing here fails on a slow machine.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAPER_SECONDS = {"lstmcor": 0.09, "voxelmorph": 0.0459}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Time LSTM-COR against VoxelMorph (ms per pair at batch 1, ms per training step) "
        "in one process, and print the ratios.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--pairs", type=int, default=20,
                        help="timed predict_on_batch calls per model (>= 20 for a median)")
    parser.add_argument("--train-steps", type=int, default=5, help="timed train_on_batch calls per model")
    parser.add_argument("--batch", type=int, default=8, help="batch size of a training step")
    parser.add_argument("--size", type=int, nargs=2, default=(160, 192), metavar=("H", "W"), help="image size")
    parser.add_argument(
        "--jit",
        choices=("auto", "on", "off"),
        default="auto",
        help="jit_compile for model.compile: auto = lstmcor.runtime.recommended_jit_compile() for the backend",
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per model before timing")
    parser.add_argument(
        "--models",
        nargs="+",
        default=("voxelmorph", "lstmcor", "lstmcor-conv", "lstmcor-floor"),
        choices=("voxelmorph", "lstmcor", "lstmcor-conv", "lstmcor-floor"),
        help="models to time; lstmcor-conv is the ablation with a plain conv in place of the ConvLSTM; "
        "lstmcor-floor keeps only the ConvLSTM's 16 chained convolutions (no gates), a lower bound",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random images and weights")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.train_steps < 0 or args.batch < 1 or args.warmup < 1:
        parser.error("--pairs and --warmup must be >= 1, --train-steps >= 0 and --batch >= 1.")
    return args


def describe_machine():
    """Backend, its version, the device and the CPU, for the table and the JSON file."""
    import keras

    backend = keras.backend.backend()
    info = {
        "backend": backend,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
    }
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if hasattr(os, "sched_getaffinity"):
        info["cpu_count_usable"] = len(os.sched_getaffinity(0))
    device = "CPU"
    if backend == "tensorflow":
        import tensorflow as tf

        info["backend_version"] = tf.__version__
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            device = f"GPU: {details.get('device_name', gpus[0].name)}"
    elif backend == "jax":
        import jax

        info["backend_version"] = jax.__version__
        first = jax.devices()[0]
        device = "CPU" if first.platform == "cpu" else f"{first.platform.upper()}: {first.device_kind}"
    elif backend == "torch":
        import torch

        info["backend_version"] = torch.__version__
        if torch.cuda.is_available():
            device = f"GPU: {torch.cuda.get_device_name(0)}"
    info["device"] = device
    return info


def convolutions_only_layer():
    """The ConvLSTM reduced to the work no exact implementation can skip: its chained convolutions.

    Eq. 12-15 need, at each of the ``T`` steps, the four gates' convolutions ``W_x * X_t + W_h *
    H_{t-1}`` before the next step can start. This layer does exactly those ``T`` convolutions, with
    the real layer's own ``PeepholeConvLSTM2D.gate_inputs``, and feeds the first ``F`` output
    channels back as the next ``H``: no sigmoid, no tanh, no cell. It is not a model anyone should train;
    LSTM-COR with it in place of the ConvLSTM is a lower bound on LSTM-COR's time with the
    backend's convolution kernels.
    """
    from keras import ops

    from lstmcor.convlstm import PeepholeConvLSTM2D

    class ConvolutionsOnly(PeepholeConvLSTM2D):
        def call(self, inputs):
            fused = self.fused_kernel()
            outputs, h = [], None
            for x_t in ops.unstack(inputs, num=inputs.shape[1], axis=1):
                h = self.gate_inputs(x_t, h, fused)[..., : self.filters]  # the real layer's convolution
                outputs.append(h)
            return ops.stack(outputs, axis=1)

    return ConvolutionsOnly


def multiply_adds(model):
    """Multiply-adds of one forward pass at batch 1: every convolution, the ConvLSTM's included."""
    import keras

    from lstmcor.convlstm import PeepholeConvLSTM2D

    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            height, width = layer.output.shape[1:3]
            total += height * width * math.prod(layer.kernel.shape)
        elif isinstance(layer, PeepholeConvLSTM2D):
            steps, height, width = layer.output.shape[1:4]
            pixels = height * width
            # Step 1 starts from H_0 = 0: input kernel only; the other steps both kernels.
            total += pixels * steps * math.prod(layer.kernel.shape)
            total += pixels * (steps - 1) * math.prod(layer.recurrent_kernel.shape)
    return int(total)


def build(name, size, jit):
    import keras

    from lstmcor.models import build_lstmcor, build_voxelmorph
    from lstmcor.settings import LAMBDA, LEARNING_RATE
    from lstmcor.training import compile_model

    if name == "voxelmorph":
        model = build_voxelmorph(size)
    elif name == "lstmcor":
        model = build_lstmcor(size)
    elif name == "lstmcor-conv":
        model = build_lstmcor(size, recurrence="conv", name="lstmcor_conv")
    else:
        floor_layer = convolutions_only_layer()

        def swap(layer):
            if layer.name == "convlstm":
                return floor_layer.from_config(layer.get_config())
            return layer.__class__.from_config(layer.get_config())

        model = keras.models.clone_model(build_lstmcor(size), clone_function=swap)
    return compile_model(model, LEARNING_RATE, LAMBDA, jit_compile=jit)


def summarise(times_s):
    ms = sorted(1000.0 * t for t in times_s)
    if len(ms) >= 4:
        q1, _, q3 = statistics.quantiles(ms, n=4)
    else:
        q1, q3 = ms[0], ms[-1]
    return {"median_ms": statistics.median(ms), "q1_ms": q1, "q3_ms": q3, "min_ms": ms[0], "n": len(ms)}


def run(args):
    import keras
    import numpy as np

    from lstmcor.runtime import recommended_jit_compile

    keras.utils.set_random_seed(args.seed)
    jit = {"on": True, "off": False}.get(args.jit) if args.jit != "auto" else recommended_jit_compile()
    size = tuple(args.size)
    rng = np.random.default_rng(args.seed)
    pair = [rng.random((1, *size, 1), dtype=np.float32) for _ in range(2)]
    batch_in = [rng.random((args.batch, *size, 1), dtype=np.float32) for _ in range(2)]
    batch_out = [batch_in[1], np.zeros((args.batch, *size, 2), np.float32)]

    # The floor model does not use the peephole weights; Keras would warn at every training step.
    warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['convlstm/peephole")
    models = {name: build(name, size, jit) for name in args.models}
    params = {name: int(model.count_params()) for name, model in models.items()}
    macs = {name: multiply_adds(model) for name, model in models.items()}

    # Warm-up: tracing and compiling are not part of the figures.
    for _ in range(args.warmup):
        for model in models.values():
            model.predict_on_batch(pair)
            if args.train_steps:
                model.train_on_batch(batch_in, batch_out)

    infer = {name: [] for name in models}
    for _ in range(args.pairs):
        for name, model in models.items():
            start = time.perf_counter()
            out = model.predict_on_batch(pair)
            np.asarray(out[1])  # the result on the host, as a caller would use it
            infer[name].append(time.perf_counter() - start)
    train = {name: [] for name in models}
    for _ in range(args.train_steps):
        for name, model in models.items():
            start = time.perf_counter()
            logs = model.train_on_batch(batch_in, batch_out)
            float(np.asarray(logs[0] if isinstance(logs, (list, tuple)) else logs))
            train[name].append(time.perf_counter() - start)

    result = {
        "machine": describe_machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "size": list(size),
        "batch_train": args.batch,
        "jit_compile": jit,
        "jit_option": args.jit,
        "params": params,
        "multiply_adds": macs,
        "inference": {name: summarise(times) for name, times in infer.items()},
        "train_step": {name: summarise(times) for name, times in train.items() if times},
    }
    if "voxelmorph" in models:
        base_i = result["inference"]["voxelmorph"]["median_ms"]
        base_t = result["train_step"].get("voxelmorph", {}).get("median_ms")
        result["ratio_inference"] = {n: s["median_ms"] / base_i for n, s in result["inference"].items()}
        result["ratio_multiply_adds"] = {n: macs[n] / macs["voxelmorph"] for n in models}
        if base_t:
            result["ratio_train_step"] = {n: s["median_ms"] / base_t for n, s in result["train_step"].items()}
    return result


def print_table(result):
    m = result["machine"]
    print(
        f"backend {m['backend']} {m.get('backend_version', '')}, keras {m['keras']}, device {m['device']}, "
        f"CPU {m['cpu']} ({m.get('cpu_count_usable', m['cpu_count'])} usable of {m['cpu_count']} cores), "
        f"jit_compile={result['jit_compile']} ({result['jit_option']})"
    )
    h, w = result["size"]
    print(f"{h} x {w}, inference batch 1, training batch {result['batch_train']}, {result['date']}")
    header = (f"{'model':<14}{'params':>9}{'GMAC':>6}{'ratio':>7}{'ms/pair':>10}{'IQR':>17}{'ratio':>7}"
              f"{'ms/train step':>15}{'IQR':>19}{'ratio':>7}")
    print(header)
    print("-" * len(header))
    for name, inf in result["inference"].items():
        tr = result["train_step"].get(name)
        r_i = result.get("ratio_inference", {}).get(name)
        r_t = result.get("ratio_train_step", {}).get(name)
        r_m = result.get("ratio_multiply_adds", {}).get(name)
        row = f"{name:<14}{result['params'][name]:>9,}{result['multiply_adds'][name] / 1e9:>6.2f}"
        row += f"{r_m:>7.2f}" if r_m is not None else f"{'':>7}"
        row += f"{inf['median_ms']:>10.1f}"
        row += f"{'[%.1f, %.1f]' % (inf['q1_ms'], inf['q3_ms']):>17}"
        row += f"{r_i:>7.2f}" if r_i is not None else f"{'':>7}"
        if tr:
            row += f"{tr['median_ms']:>15.0f}{'[%.0f, %.0f]' % (tr['q1_ms'], tr['q3_ms']):>19}"
            row += f"{r_t:>7.2f}" if r_t is not None else ""
        print(row)
    paper = PAPER_SECONDS["lstmcor"] / PAPER_SECONDS["voxelmorph"]
    print(f"paper (GPU): LSTM-COR {PAPER_SECONDS['lstmcor'] * 1000:.0f} ms, VoxelMorph "
          f"{PAPER_SECONDS['voxelmorph'] * 1000:.1f} ms per pair: ratio {paper:.2f}")


def main(argv=None):
    args = parse_args(argv)
    result = run(args)
    print_table(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
