"""Batching, sharding and resume (smg_jax.data.pipeline) over an in-memory source."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smg_jax import graph
from smg_jax.data import pipeline, transforms

V = graph.NUM_JOINTS


def make_source(num_examples: int, seed: int = 0) -> list[dict]:
    """Clips of 5-80 frames whose x coordinates all equal the example's index."""
    rng = np.random.default_rng(seed)
    source = []
    for i in range(num_examples):
        length = int(rng.integers(5, 80))
        joints = rng.normal(0.0, 0.2, size=(length, V, 3)).astype(np.float32)
        joints[..., 0] = i + 1.0  # the example's identity survives the authors' preset
        source.append(
            {
                "joints": joints,
                "label": i % 17,
                "subject": 1 + i // 10,
                "sample_id": f"Sample{1 + i // 10:04d}",
                "segment_index": i % 10,
                "start": 0,
                "end": length,
            }
        )
    return source


def ids(batch: dict) -> list[int]:
    """The source index of each row (authors preset keeps x = index + 1 in frame 0)."""
    return [int(np.rint(v)) - 1 for v in batch["x"][:, 0, 0, 0, 0]]


AUTHORS = transforms.get_preset("authors")


def test_eval_sees_every_example_once_with_padding():
    source = make_source(23)
    batches = list(pipeline.eval_iterator(source, AUTHORS, batch_size=5, num_threads=0))
    assert len(batches) == 5 == pipeline.num_eval_batches(23, 5)
    for batch in batches:
        assert batch["x"].shape == (5, 1, 60, V, 3) and batch["x"].dtype == np.float32
        assert batch["label"].dtype == np.int32 and batch["mask"].dtype == np.bool_
    mask = np.concatenate([b["mask"] for b in batches])
    index = np.concatenate([b["index"] for b in batches])
    assert mask.sum() == 23 and not mask[23:].any()
    np.testing.assert_array_equal(index[mask], np.arange(23))
    assert (index[~mask] == -1).all()
    last = batches[-1]
    assert not last["x"][~last["mask"]].any() and not last["label"][~last["mask"]].any()
    real = [i for b in batches for i, m in zip(ids(b), b["mask"], strict=True) if m]
    assert real == list(range(23))
    labels = np.concatenate([b["label"] for b in batches])[mask]
    np.testing.assert_array_equal(labels, [s["label"] for s in source])


def test_eval_shards_are_disjoint_and_in_lockstep():
    source = make_source(23)
    seen = []
    for shard in range(3):
        batches = list(
            pipeline.eval_iterator(
                source, AUTHORS, batch_size=4, shard_index=shard, shard_count=3, num_threads=2
            )
        )
        assert len(batches) == pipeline.num_eval_batches(23, 4, 3) == 2  # ceil(8 / 4)
        for batch in batches:
            seen += batch["index"][batch["mask"]].tolist()
    assert sorted(seen) == list(range(23))


def test_train_batches_are_full_shuffled_and_deterministic():
    source = make_source(23)
    first = pipeline.train_iterator(source, AUTHORS, batch_size=4, seed=1, num_threads=0)
    again = pipeline.train_iterator(source, AUTHORS, batch_size=4, seed=1, num_threads=2)
    other = pipeline.train_iterator(source, AUTHORS, batch_size=4, seed=2, num_threads=0)
    a = [next(first) for _ in range(12)]
    b = [next(again) for _ in range(12)]
    c = [next(other) for _ in range(12)]
    for x, y in zip(a, b, strict=True):
        assert x.keys() == {"x", "label", "mask"}
        assert x["x"].shape == (4, 1, 60, V, 3) and x["mask"].all()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert [ids(x) for x in a] != [ids(x) for x in c]
    # Each epoch is a permutation of the data, and the next epoch a different one.
    order = [i for x in a for i in ids(x)]
    assert sorted(order[:23]) == list(range(23)) == sorted(order[23:46])
    assert order[:23] != list(range(23)) and order[:23] != order[23:46]
    assert first.step == 12 and first.epoch == pytest.approx(12 * 4 / 23)


def test_resume_from_saved_state_gives_identical_batches():
    source = make_source(19)
    preset = transforms.get_preset("normalized_aug", num_frames=16)
    kwargs = dict(batch_size=4, seed=5, shard_index=1, shard_count=2)
    run = pipeline.train_iterator(source, preset, num_threads=2, **kwargs)
    for _ in range(7):
        next(run)
    state = json.loads(json.dumps(run.get_state()))  # survives a JSON checkpoint
    assert state["step"] == 7
    expected = [next(run) for _ in range(6)]
    resumed = pipeline.train_iterator(source, preset, num_threads=0, state=state, **kwargs)
    for want in expected:
        got = next(resumed)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    # The same iterator can also jump back.
    run.set_state(state)
    np.testing.assert_array_equal(next(run)["x"], expected[0]["x"])
    # Augmentation differs between epochs: the same example never repeats bit for bit.
    assert not np.array_equal(expected[0]["x"], expected[3]["x"])
    with pytest.raises(transforms.DataError, match="seed: saved 5 vs now 6"):
        pipeline.train_iterator(source, preset, state=state, **{**kwargs, "seed": 6})


def test_train_shards_split_each_epoch_disjointly():
    source = make_source(24)
    per_shard = []
    for shard in range(3):
        run = pipeline.train_iterator(
            source, AUTHORS, batch_size=4, seed=3, shard_index=shard, shard_count=3, num_threads=0
        )
        epoch = [i for _ in range(2) for i in ids(next(run))]  # 8 examples per shard = 1 epoch
        per_shard.append(set(epoch))
        assert len(epoch) == 8 == len(set(epoch))
    assert set().union(*per_shard) == set(range(24))
    assert sum(len(s) for s in per_shard) == 24


def test_finite_epochs_drop_the_remainder():
    source = make_source(10)
    run = pipeline.train_iterator(source, AUTHORS, batch_size=4, seed=0, num_epochs=2)
    batches = list(run)
    assert len(batches) == len(run) == 5  # 20 examples -> 5 full batches
    with pytest.raises(TypeError):
        len(pipeline.train_iterator(source, AUTHORS, batch_size=4, seed=0))


def test_errors_name_the_problem():
    source = make_source(3)
    source[1]["joints"][2, 4, 0] = np.inf
    with pytest.raises(transforms.DataError, match=r"Sample0001 segment 1 .*frame 2 joint 4"):
        list(pipeline.eval_iterator(source, AUTHORS, batch_size=2, num_threads=0))
    with pytest.raises(transforms.DataError, match="shard_index"):
        pipeline.train_iterator(source, AUTHORS, batch_size=2, seed=0, shard_index=2, shard_count=2)
    with pytest.raises(transforms.DataError, match="batch_size"):
        pipeline.eval_dataset(source, AUTHORS, batch_size=0)
