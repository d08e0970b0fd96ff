"""The four input streams (joints, bones and their frame-to-frame motion), each trained alone,
and their score fusions as 2s-AGCN (joint + bone, 1:1) and the 4-stream models
(0.6 / 0.6 / 0.4 / 0.4) combine them (smg_jax.ensemble.fuse, per seed).

    python -m experiments.sweep --config=experiments/configs/stgcn.py \\
        --study=experiments/studies/streams.py --seeds=3 --vmap_seeds \\
        --workdir=runs/ablations/streams --config.data.manual_dir=/path/to/SMG

Any model config works (e.g. --config=experiments/configs/msg3d.py); the preset is the
config's, so --config.data.preset=centered gives the streams of centred clips.
"""

from smg_jax.sweep import Fusion, Study


def get_study() -> Study:
    return Study(
        name="input streams and their fusion",
        variants={
            "joint": {"data.stream": "joint"},
            "bone": {"data.stream": "bone"},
            "joint_motion": {"data.stream": "joint_motion"},
            "bone_motion": {"data.stream": "bone_motion"},
        },
        fusions=(
            Fusion("2s_joint+bone", ("joint", "bone")),
            Fusion("4s_all_streams", ("joint", "bone", "joint_motion", "bone_motion")),
        ),
        description=(
            "joint: joint coordinates; bone: child minus parent joint along the skeleton's "
            "edges; *_motion: the frame-to-frame difference of either. Fusions add the streams' "
            "test logits with the published weights, seed by seed; their parameter count is "
            "the sum of the streams'."
        ),
        baseline="joint",
    )
