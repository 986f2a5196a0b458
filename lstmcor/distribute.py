"""Data-parallel training across local devices (and hosts) with Keras's own engine.

``lstmcor train --devices N`` (or ``all``) splits every batch of pairs across N devices with
``keras.distribution.DataParallel``: each device holds a copy of the weights, computes the
gradient of its share of the batch, and the gradients are averaged, so a step on N devices is
the step on one device with the same global batch (up to the order of floating-point sums).
It needs the JAX backend (``KERAS_BACKEND=jax``); the global batch must divide evenly across
the devices. The spatial transformer gathers per sample, so the batch stays split.

Several hosts: start the same command on every host with the environment variables
``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator's ``host:port`` first),
``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID`` set;
:func:`setup` then calls ``keras.distribution.initialize()`` (which calls
``jax.distributed.initialize``), each process feeds its share of every global batch, and only
process 0 writes checkpoints and logs (:func:`is_chief`).

Example:
    >>> from lstmcor.distribute import setup
    >>> setup(1, batch_size=8) is None  # one device: nothing to set up
    True
"""
from __future__ import annotations

import os

import keras

MULTI_HOST_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                        "KERAS_DISTRIBUTION_PROCESS_ID")


def parse_devices(value: str | int) -> int | str:
    """``"all"`` or a positive integer, from the command line's ``--devices``."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--devices takes a number of devices or 'all', got {value!r}.") from None
    if count < 1:
        raise ValueError(f"--devices must be at least 1, got {count}.")
    return count


def setup(devices: int | str = 1, batch_size: int = 8) -> keras.distribution.DataParallel | None:
    """Spread training over ``devices`` local devices (``"all"``: every one); None for one device.

    Args:
        devices: how many devices, or ``"all"``.
        batch_size: the global batch, in pairs; it must divide evenly across the devices.

    Returns:
        A ``DataParallel`` distribution to train under (``with distribution.scope(): ...``), or None
        when training runs on one device.

    Raises:
        ValueError: another backend than JAX, more devices than there are, or a batch that does
            not divide evenly; the message says what to use instead.
    """
    devices = parse_devices(devices)
    if devices == 1:
        return None
    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(f"--devices {devices} needs the JAX backend; the {backend} backend trains on one device "
                         "here. Start with KERAS_BACKEND=jax (pip install jax), or use --devices 1.")
    if all(os.environ.get(name) for name in MULTI_HOST_VARIABLES):
        keras.distribution.initialize()
    available = keras.distribution.list_devices()
    count = len(available) if devices == "all" else devices
    if count > len(available):
        raise ValueError(f"--devices {count} asks for more devices than the {len(available)} found "
                         f"({', '.join(available)}): use --devices {len(available)} or 'all'.")
    if count == 1:
        return None
    if batch_size % count:
        lower = max(count, batch_size // count * count)
        raise ValueError(f"a batch of {batch_size} pairs does not divide evenly across {count} devices: "
                         f"use --batch-size {lower} or {lower + count}.")
    return keras.distribution.DataParallel(devices=available[:count])


def is_chief() -> bool:
    """True in the process that writes checkpoints and logs (process 0; the only one on one host)."""
    distribution = keras.distribution.distribution()
    return getattr(distribution, "_process_id", 0) == 0 if distribution is not None else True


def process_share(batch_size: int) -> tuple[int, int]:
    """``(first, count)``: the slice of every global batch this process feeds (all of it on one host)."""
    distribution = keras.distribution.distribution()
    processes = getattr(distribution, "num_processes", 1) if distribution is not None else 1
    if processes <= 1:
        return 0, batch_size
    if batch_size % processes:
        raise ValueError(f"a batch of {batch_size} pairs does not divide evenly across {processes} hosts.")
    share = batch_size // processes
    return getattr(distribution, "_process_id", 0) * share, share
