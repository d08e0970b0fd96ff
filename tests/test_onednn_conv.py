"""The oneDNN temporal convolutions (``smg_jax.models.onednn_conv``, built by
``smg_jax.runtime.onednn``) against XLA's."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import platform
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smg_jax import models
from smg_jax.models import onednn_conv
from smg_jax.models.ops import temporal_conv
from smg_jax.runtime import onednn

LINUX_X86 = platform.system() == "Linux" and platform.machine() == "x86_64"


def _wheels_installed() -> bool:
    try:
        importlib.metadata.version("onednn-devel-cpu-gomp")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


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
    return {name for name in onednn.TARGETS if f"smg_onednn_conv_frames_{name}" in text}


@pytest.fixture
def use_onednn():
    """``use_onednn(on)`` loads (building if needed) or unloads the convolutions for one test.

    Skips, with the reason, where they cannot be built; what was loaded before comes back.
    """
    was_registered = onednn.registered()

    def use(on: bool = True) -> None:
        if not on:
            onednn.unload()
        elif not onednn.load():
            pytest.skip(f"oneDNN convolutions cannot be built here: {onednn.unavailable_reason()}")

    yield use
    if was_registered:
        onednn.load()
    else:
        onednn.unload()


@pytest.mark.skipif(
    not (LINUX_X86 and _wheels_installed()),
    reason="needs the [onednn] extra's wheels (Linux x86-64): pip install 'smg-jax[onednn]'",
)
def test_the_onednn_convolutions_build_and_load_here(use_onednn):
    # `make test` installs the [onednn] extra, so CI must fail if the build breaks.
    assert onednn.load(), onednn.unavailable_reason()
    assert onednn.registered()
    assert onednn.version().startswith("3.")


def test_tracing_builds_nothing_and_stays_in_xla(tmp_path):
    # A library user who never loads the kernels: no compiler runs, XLA's convolution.
    probe = (
        "import jax, jax.numpy as jnp\n"
        "from smg_jax.models import onednn_conv\nfrom smg_jax.models.ops import temporal_conv\n"
        "x, w = jnp.ones((2, 3, 15, 8)), jnp.ones((9, 8, 4))\n"
        "conv = lambda x, w: temporal_conv.convolve_frames(x, w, 1, 1, 4)\n"
        "text = jax.jit(conv).lower(x, w).as_text()\n"
        "print(onednn_conv.used_for(jnp.float32, (9, 8, 4)), 'smg_onednn' in text)\n"
    )
    env = {**os.environ, "SMG_JAX_CACHE_DIR": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=root, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]
    assert not any(tmp_path.iterdir())


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
    use_onednn, batch, frames, kernel, stride, dilation, pad
):
    use_onednn()
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
def test_vmapped_kernels_run_one_call_per_kernel(use_onednn):
    # The seeds of experiments.sweep are vmapped: each seed has its own kernel.
    use_onednn()
    x, kernels = rand(3, 2, 5, 12, 4), rand(3, 9, 4, 6, seed=1)
    got = jax.jit(jax.vmap(lambda x, w: temporal_conv.convolve_frames(x, w, 1, 1, 4)))(x, kernels)
    for i in range(3):
        np.testing.assert_allclose(got[i], xla_conv(x[i], kernels[i], 1, 1, 4), atol=1e-5)


@needs_onednn
def test_what_stays_in_xla(use_onednn):
    x = rand(2, 3, 15, 8)

    def conv(x, w):
        return temporal_conv.convolve_frames(x, w, 1, 1, 4)

    use_onednn()
    assert custom_call_targets(conv, x, rand(9, 8, 4)) == {"forward"}
    # bfloat16 (mixed precision) and kernels above the size limit stay in XLA.
    assert not custom_call_targets(conv, x.astype(jnp.bfloat16), rand(9, 8, 4).astype(jnp.bfloat16))
    assert not onednn_conv.used_for(jnp.float32, (9, 256, 384))
    assert onednn_conv.used_for(jnp.float32, (9, 256, 256))
    # Unloaded: functions traced from now on (a new one here: jit keeps the
    # trace of the old one) stay in XLA.
    use_onednn(False)
    assert not custom_call_targets(lambda x, w: conv(x, w), x, rand(9, 8, 4))


@needs_onednn
def test_a_wrong_output_length_is_an_error_that_names_the_shapes(use_onednn):
    use_onednn()
    x, w = rand(4, 15, 3), rand(9, 3, 2)
    wrong = jax.ffi.ffi_call(
        "smg_onednn_conv_frames_forward", jax.ShapeDtypeStruct((4, 14, 2), jnp.float32)
    )
    one = np.int64(1)
    with pytest.raises(Exception, match=r"output has 14 frames, PyTorch's Conv1d gives 15"):
        jax.block_until_ready(wrong(x, w, stride=one, pad=np.int64(4), dilation=one))


@needs_onednn
def test_a_model_trains_the_same_with_and_without_onednn(use_onednn):
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
        use_onednn(switch == "1")
        step = jax.jit(jax.value_and_grad(lambda p, x: loss(p, x)))
        assert bool(custom_call_targets(step, variables["params"], x)) == (switch == "1")
        results[switch] = step(variables["params"], x)
    (value_on, grads_on), (value_off, grads_off) = results["1"], results["0"]
    np.testing.assert_allclose(value_on, value_off, rtol=1e-5)
    for on, off in zip(jax.tree.leaves(grads_on), jax.tree.leaves(grads_off), strict=True):
        np.testing.assert_allclose(on, off, rtol=1e-3, atol=1e-5)


@needs_onednn
def test_build_compiles_into_an_empty_cache(tmp_path):
    try:
        library = onednn.build(tmp_path)
    except onednn.OnednnUnavailableError as error:
        pytest.skip(f"oneDNN convolutions cannot be built here: {error}")
    assert library.parent == tmp_path and library.suffix == ".so"
    assert onednn.build(tmp_path) == library  # cached: no second build
    assert not list(tmp_path.glob("tmp*"))  # no partial file left


def test_smg_build_kernels_builds_into_the_cache(tmp_path, capsys):
    code = onednn.main(["--cache_dir", str(tmp_path)])
    out, err = capsys.readouterr()
    if code != 0:
        assert err.startswith("error: ") and "Fix:" in err
        pytest.skip(f"oneDNN convolutions cannot be built here: {err}")
    (library,) = tmp_path.glob("libsmg_onednn_conv-*.so")
    assert out.startswith("oneDNN temporal convolutions (3.") and str(library) in out


def test_build_explains_a_missing_onednn(monkeypatch, tmp_path):
    monkeypatch.setattr(onednn, "_onednn_prefixes", lambda profile: [tmp_path])
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    with pytest.raises(onednn.OnednnUnavailableError, match=r"pip install 'smg-jax\[onednn\]'"):
        onednn.build(tmp_path / "cache")


@needs_onednn
def test_build_explains_a_missing_compiler(monkeypatch, tmp_path):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(onednn.shutil, "which", lambda name: None)
    with pytest.raises(onednn.OnednnUnavailableError, match="no C\\+\\+ compiler"):
        onednn.build(tmp_path)
