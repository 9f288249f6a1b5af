"""Training data as torch tensors; reading and splitting face folders is enhance_edge.dataset's."""

from __future__ import annotations

import torch

from enhance_edge.dataset import PairSet


def pair_tensors(pairs: PairSet) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, hr) of a split as float32 NCHW tensors in [0, 1]."""
    lr, hr = pairs.unit_arrays()
    return torch.from_numpy(lr), torch.from_numpy(hr)
