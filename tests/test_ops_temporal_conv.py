"""Convolution over frames: XLA's stride-1 and strided rewrites, oneDNN, against one lax conv."""

from __future__ import annotations

import pytest
from ops_contract import check_fast_equals_reference, rand

from smg_jax.models import ops
from smg_jax.models.ops import temporal_conv

CASES = [
    # (frames, kernel, stride, dilation, pad)
    (16, 9, 1, 1, 4),
    (15, 9, 2, 1, 4),
    (16, 5, 3, 1, 2),
    (20, 5, 1, 2, 4),
    (17, 5, 3, 2, 4),
    (12, 1, 2, 1, 0),  # one frame: a strided slice and a matmul
    (12, 1, 1, 1, 1),  # one frame, padded: a convolution
]


@pytest.mark.parametrize("custom_calls", [True, False], ids=["as_built", "xla_only"])
@pytest.mark.parametrize(("frames", "kernel", "stride", "dilation", "pad"), CASES)
def test_fast_convolution_equals_the_reference(custom_calls, frames, kernel, stride, dilation, pad):
    def conv(x, w):
        if custom_calls:
            return temporal_conv.convolve_frames(x, w, stride, dilation, pad)
        with ops.without_custom_calls():
            return temporal_conv.convolve_frames(x, w, stride, dilation, pad)

    x, w = rand(2, 3, frames, 6), rand(kernel, 6, 5, seed=1)
    check_fast_equals_reference(conv, [x, w], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("frames", "kernel", "stride", "dilation", "pad"), CASES[:5])
def test_the_strided_rewrite_equals_the_reference(frames, kernel, stride, dilation, pad):
    def fast_or_plain(x, w):
        if ops.reference_enabled():
            return temporal_conv.reference_conv1d(x, w, stride, dilation, pad)
        return temporal_conv.strided_conv1d(x, w, stride, dilation, pad)

    check_fast_equals_reference(fast_or_plain, [rand(4, frames, 3), rand(kernel, 3, 2, seed=1)])
