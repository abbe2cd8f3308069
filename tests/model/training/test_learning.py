"""Training learns on full-size-like volumes: the quick version of ``benchmarks/learning.py``.

Realistic easy cases (``synth_full_size``: a brain of ~18 % of the grid in a zero background,
gliomas of 0.5-3 % of the brain with the three nested sub-regions) on a 96x96x64 grid instead of
240x240x155, 32^3 crops instead of 64^3, 240 steps, one seed: the default CGA U-Net must learn
every region and put no tumour outside the brain. Predicted as ``cga predict`` does by default (the
whole brain box in one pass), this setting gave WT 0.618; the bars sit below what it reached.
"""

from benchmarks.learning import Setting, measure

QUICK = dict(
    train_cases=8,
    val_cases=1,
    test_cases=2,
    shape=(96, 96, 64),
    difficulty="easy",
    steps=240,
    crop=(32, 32, 32),
    batch_size=2,
    base_channels=8,
    workers=0,
    seeds=(0,),
)
BAR = {"WT": 0.55, "TC": 0.5, "ET": 0.35}


def test_default_cga_unet_learns_full_size_like_cases(tmp_path):
    (row,) = measure(Setting(out=tmp_path, variants=["cga"], **QUICK), progress=False)
    assert row["steps"] == 240 and row["variant"] == "cga" and row["seed"] == 0
    assert row["test"]["outside"] == 0
    for region, bar in BAR.items():
        assert row["test"][region] >= bar, (region, row)
