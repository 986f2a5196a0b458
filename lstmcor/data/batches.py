"""Keras batches of (moving, fixed) pairs for ``model.fit``: the one data module that needs Keras."""
from __future__ import annotations

import keras
import numpy as np

from lstmcor.data.pairs import _augment_pair, _split_members


class PairDataset(keras.utils.PyDataset):
    """Batches of (moving, fixed) pairs of different subjects of one split, for ``model.fit``.

    ``ds[i]`` is ``((moving, fixed), (fixed, zeros))``: inputs of a two-input model and targets for
    the losses [MSE on the moved image, Grad on the flow]; ``moving``/``fixed`` are
    ``[B, H, W, 1]`` float32, ``zeros`` is ``[B, H, W, 2]``. The pairs of batch ``i`` come from
    ``seed``, the epoch counter and ``i`` only: the same ``i`` in the same epoch gives the same
    batch, and ``on_epoch_end`` (called by ``fit``) moves to fresh pairs for the next epoch.
    :meth:`set_epoch` sets the epoch instead and stops ``on_epoch_end`` from moving it; the trainer
    uses it so that an epoch's pairs depend on ``fit``'s epoch number alone (Keras's evaluation
    calls ``on_epoch_end`` twice per epoch, so counting calls would not).
    ``steps_per_epoch=None`` gives one pass over the split's images as moving images
    (ceil(n / batch_size) batches). ``augment=True`` flips both images of a pair left-right
    together (half of the pairs) and applies an independent random gamma to each image.
    """

    def __init__(self, dataset, split="train", batch_size=8, steps_per_epoch=None, seed=0,
                 augment=False, share: tuple[int, int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.dataset = dataset
        self.split = split
        self.members = _split_members(dataset, split)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self.members)
        self.steps_per_epoch = int(steps_per_epoch) if steps_per_epoch else -(-n // self.batch_size)
        self.seed = int(seed)
        self.augment = bool(augment)
        self.epoch = 0
        self.epoch_is_set = False
        # (first, count): the part of every batch this process feeds when several hosts train together
        self.share = (0, self.batch_size) if share is None else (int(share[0]), int(share[1]))
        if self.share[0] < 0 or self.share[1] < 1 or sum(self.share) > self.batch_size:
            raise ValueError(f"share {share} is not a part of a batch of {self.batch_size} pairs")
        self._subj = np.array([dataset.subjects[i] for i in self.members])

    def __len__(self):
        return self.steps_per_epoch

    def pairs_for_batch(self, index: int) -> list[tuple[int, int]]:
        """The (moving, fixed) dataset indices of batch ``index`` in the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        n = len(self.members)
        pairs = []
        while len(pairs) < self.batch_size:
            a, b = rng.integers(0, n, size=2)
            if self._subj[a] != self._subj[b]:
                pairs.append((int(self.members[a]), int(self.members[b])))
        return pairs

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range (0..{len(self) - 1})")
        pairs = self.pairs_for_batch(index)
        imgs = self.dataset.images
        mov = np.empty((self.batch_size,) + imgs.shape[1:3] + (1,), np.float32)
        fix = np.empty_like(mov)
        aug_rng = np.random.default_rng([self.seed, self.epoch, int(index), 1])
        for k, (m, f) in enumerate(pairs):
            a, b = imgs[m], imgs[f]
            if self.augment:
                a, b = _augment_pair(a, b, aug_rng)
            mov[k, ..., 0] = a
            fix[k, ..., 0] = b
        first, count = self.share  # every host draws the whole batch, so the parts never overlap
        mov, fix = mov[first:first + count], fix[first:first + count]
        zeros = np.zeros(mov.shape[:3] + (2,), np.float32)
        return (mov, fix), (fix, zeros)

    def set_epoch(self, epoch: int) -> None:
        """Draw the pairs of epoch ``epoch`` from now on; ``on_epoch_end`` no longer advances the epoch."""
        self.epoch = int(epoch)
        self.epoch_is_set = True

    def on_epoch_end(self):
        if not self.epoch_is_set:
            self.epoch += 1
