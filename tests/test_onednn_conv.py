"""The oneDNN temporal convolutions (``smg_jax.models.onednn_conv``) against XLA's."""

from __future__ import annotations

import platform

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smg_jax import models
from smg_jax.models import onednn_conv
from smg_jax.models.ops import temporal_conv

LINUX_X86 = platform.system() == "Linux" and platform.machine() == "x86_64"


def rand(*shape: int, seed: int = 0) -> jnp.ndarray:
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def xla_conv(x, w, stride, dilation, pad):
    """PyTorch's ``Conv1d`` over frames of ``(B, V, T, C)`` by XLA, at full precision."""
    b, v, t, c = x.shape
    y = jax.lax.conv_general_dilated(
        x.reshape(b * v, t, c), w, (stride,), [(pad, pad)], rhs_dilation=(dilation,),
        dimension_numbers=("NWC", "WIO", "NWC"), precision="highest",
    )  # fmt: skip
    return y.reshape(b, v, y.shape[1], w.shape[-1])


def custom_call_targets(fn, *args) -> set[str]:
    text = jax.jit(fn).lower(*args).as_text()
    return {name for name in onednn_conv.TARGETS if f"smg_onednn_conv_frames_{name}" in text}


@pytest.mark.skipif(not LINUX_X86, reason="the oneDNN wheels are declared for Linux x86-64")
def test_the_onednn_convolutions_build_and_load_here():
    # smg-jax installs oneDNN on Linux x86-64, so CI must fail if the build breaks.
    assert onednn_conv.available(), onednn_conv.unavailable_reason()
    assert onednn_conv.version().startswith("3.")


needs_onednn = pytest.mark.skipif(
    not LINUX_X86, reason="the oneDNN convolutions are built for Linux x86-64 only"
)


@needs_onednn
@pytest.mark.parametrize(
    ("batch", "frames", "kernel", "stride", "dilation", "pad"),
    [
        (2, 20, 9, 1, 1, 4),  # ST-GCN / 2s-AGCN temporal unit
        (4, 15, 9, 1, 1, 4),  # 100 sequences: several chunks, the last one short
        (2, 20, 9, 2, 1, 4),  # the stride-2 units
        (2, 21, 9, 2, 1, 4),  # odd frames with stride 2
        (2, 30, 5, 1, 2, 4),  # MS-G3D / CTR-GCN dilated branches
        (2, 30, 3, 1, 4, 4),
        (2, 16, 5, 3, 1, 2),
        (2, 11, 3, 1, 1, 0),  # no padding
        (2, 12, 1, 1, 1, 1),  # one tap, padded: a convolution, not a product
    ],
)  # fmt: skip
def test_convolve_frames_by_onednn_matches_xla_forward_and_gradients(
    monkeypatch, batch, frames, kernel, stride, dilation, pad
):
    monkeypatch.setenv(onednn_conv.ENV_SWITCH, "1")
    x = rand(batch, 25, frames, 6)
    w = rand(kernel, 6, 5, seed=1)

    def ours(x, w):
        return temporal_conv.convolve_frames(x, w, stride, dilation, pad)

    assert custom_call_targets(ours, x, w) == {"forward"}
    expected = xla_conv(x, w, stride, dilation, pad)
    np.testing.assert_allclose(jax.jit(ours)(x, w), expected, rtol=1e-5, atol=1e-5)

    cotangent = rand(*expected.shape, seed=2)

    def loss(f):
        return lambda x, w: jnp.sum(f(x, w) * cotangent)

    # (The loss is linear in the output: its gradient needs no forward pass.)
    grad_ours = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))
    assert custom_call_targets(grad_ours, x, w) == {"input_gradient", "kernel_gradient"}
    want = jax.grad(loss(lambda x, w: xla_conv(x, w, stride, dilation, pad)), argnums=(0, 1))(x, w)
    for got, reference in zip(grad_ours(x, w), want, strict=True):
        np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-4)


@needs_onednn
def test_vmapped_kernels_run_one_call_per_kernel(monkeypatch):
    # The seeds of experiments.sweep are vmapped: each seed has its own kernel.
    monkeypatch.setenv(onednn_conv.ENV_SWITCH, "1")
    x, kernels = rand(3, 2, 5, 12, 4), rand(3, 9, 4, 6, seed=1)
    got = jax.jit(jax.vmap(lambda x, w: temporal_conv.convolve_frames(x, w, 1, 1, 4)))(x, kernels)
    for i in range(3):
        np.testing.assert_allclose(got[i], xla_conv(x[i], kernels[i], 1, 1, 4), atol=1e-5)


@needs_onednn
def test_what_stays_in_xla(monkeypatch):
    x = rand(2, 3, 15, 8)

    def conv(x, w):
        return temporal_conv.convolve_frames(x, w, 1, 1, 4)

    monkeypatch.setenv(onednn_conv.ENV_SWITCH, "1")
    assert custom_call_targets(conv, x, rand(9, 8, 4)) == {"forward"}
    # bfloat16 (mixed precision) and kernels above the size limit stay in XLA.
    assert not custom_call_targets(conv, x.astype(jnp.bfloat16), rand(9, 8, 4).astype(jnp.bfloat16))
    assert not onednn_conv.used_for(jnp.float32, (9, 256, 384))
    assert onednn_conv.used_for(jnp.float32, (9, 256, 256))
    # The switch, read when a function is traced (a new function here: jit
    # keeps the trace of the old one).
    monkeypatch.setenv(onednn_conv.ENV_SWITCH, "0")
    assert not custom_call_targets(lambda x, w: conv(x, w), x, rand(9, 8, 4))


@needs_onednn
def test_a_wrong_output_length_is_an_error_that_names_the_shapes():
    x, w = rand(4, 15, 3), rand(9, 3, 2)
    wrong = jax.ffi.ffi_call(
        "smg_onednn_conv_frames_forward", jax.ShapeDtypeStruct((4, 14, 2), jnp.float32)
    )
    one = np.int64(1)
    with pytest.raises(Exception, match=r"output has 14 frames, PyTorch's Conv1d gives 15"):
        jax.block_until_ready(wrong(x, w, stride=one, pad=np.int64(4), dilation=one))


@needs_onednn
def test_a_model_trains_the_same_with_and_without_onednn(monkeypatch):
    model = models.create("agcn", num_classes=5, num_persons=1)
    x = rand(2, 1, 20, 25, 3)
    variables = model.init(jax.random.key(0), x, train=False)

    def loss(params, x):
        logits, _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
        )
        return jnp.mean(jax.nn.log_softmax(logits)[:, 0])

    results = {}
    for switch in ("1", "0"):
        monkeypatch.setenv(onednn_conv.ENV_SWITCH, switch)
        step = jax.jit(jax.value_and_grad(lambda p, x: loss(p, x)))
        assert bool(custom_call_targets(step, variables["params"], x)) == (switch == "1")
        results[switch] = step(variables["params"], x)
    (value_on, grads_on), (value_off, grads_off) = results["1"], results["0"]
    np.testing.assert_allclose(value_on, value_off, rtol=1e-5)
    for on, off in zip(jax.tree.leaves(grads_on), jax.tree.leaves(grads_off), strict=True):
        np.testing.assert_allclose(on, off, rtol=1e-3, atol=1e-5)


@needs_onednn
def test_build_compiles_into_an_empty_cache(tmp_path):
    library = onednn_conv.build(tmp_path)
    assert library.parent == tmp_path and library.suffix == ".so"
    assert onednn_conv.build(tmp_path) == library  # cached: no second build
    assert not list(tmp_path.glob("tmp*"))  # no partial file left


def test_build_explains_a_missing_onednn(monkeypatch, tmp_path):
    monkeypatch.setattr(onednn_conv, "_onednn_prefixes", lambda: [tmp_path])
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    with pytest.raises(onednn_conv.OnednnUnavailableError, match="pip install 'onednn-cpu-gomp"):
        onednn_conv.build(tmp_path / "cache")


@needs_onednn
def test_build_explains_a_missing_compiler(monkeypatch, tmp_path):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(onednn_conv.shutil, "which", lambda name: None)
    with pytest.raises(onednn_conv.OnednnUnavailableError, match="no C\\+\\+ compiler"):
        onednn_conv.build(tmp_path)
