"""The input preset: the SMG authors' 60-frame window against resampling, centring, view
normalisation and augmentation (smg_jax.data.transforms presets).

    python -m experiments.sweep --config=experiments/configs/stgcn.py \\
        --study=experiments/studies/input_preset.py --seeds=3 --vmap_seeds \\
        --workdir=runs/ablations/input_preset --config.data.manual_dir=/path/to/SMG
"""

from smg_jax.sweep import Study


def get_study() -> Study:
    # Augmentation is set in every variant, so that a config that augments (e.g. CTR-GCN's)
    # does not carry it into the presets that should not.
    return Study(
        name="input preset",
        variants={
            "authors_60": {"data.preset": "authors", "data.augment": False},
            "resample": {"data.preset": "resample", "data.augment": False},
            "centered": {"data.preset": "centered", "data.augment": False},
            "normalized": {"data.preset": "normalized", "data.augment": False},
            "normalized_aug": {"data.preset": "normalized_aug", "data.augment": True},
        },
        description=(
            "authors_60: the authors' smg_gendata.py (last 59 frames of the clip, zero-padded "
            "to 60, raw camera coordinates); resample: lost joints repaired, the whole clip "
            "resampled (64 frames unless data.num_frames says otherwise); centered: + origin at "
            "the first frame's spine mid; normalized: + yaw turned to face the camera along the "
            "hip line; normalized_aug: + random crop, rotation, scale and shift in training."
        ),
        baseline="authors_60",
    )
