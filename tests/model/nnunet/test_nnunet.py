"""nnU-Net v2 integration (tested with nnunetv2 2.8.1 on CPU): convert -> plan and preprocess ->
train with nnUNetTrainerCGA (``cga nnunet-train``) -> predict with nnU-Net's predictor -> reload.

The pipeline runs once per module on 5 synthetic 32^3 cases: nnU-Net's own fingerprint, planning
and preprocessing functions (the fingerprint samples 1e5 foreground voxels instead of 1e8, which
alone takes minutes), then one epoch of two iterations of a test subclass of the trainer (written
into a temporary ``nnUNet_extTrainer`` folder, as a user's own variant would be).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

pytest.importorskip("nnunetv2", reason="nnU-Net v2 is an optional extra: pip install .[nnunet]")

from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet  # noqa: E402
from dynamic_network_architectures.building_blocks.residual import BasicBlockD  # noqa: E402
from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor  # noqa: E402
from nnunetv2.experiment_planning.plan_and_preprocess_api import (  # noqa: E402
    extract_fingerprint_dataset,
    plan_experiments,
    preprocess,
)
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor  # noqa: E402
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper  # noqa: E402
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class  # noqa: E402

from cga_model import cli  # noqa: E402
from cga_model.data.cases import load_case  # noqa: E402
from cga_model.data.layouts import find_cases  # noqa: E402
from cga_model.nn.loss_config import LossConfig  # noqa: E402
from cga_model.nn.losses import attention_loss, attention_mse_loss, inter_class_term  # noqa: E402
from cga_model.nnunet import TRAINER_DIR  # noqa: E402
from cga_model.nnunet.lookup import find_trainer_class, nnunet_trainer_lookup  # noqa: E402
from cga_model.nnunet.loss import GuidedLoss, target_categories  # noqa: E402
from cga_model.nnunet.network import GuidedNetwork, attention_rate, guided_network  # noqa: E402
from cga_model.nnunet.trainer import nnUNetTrainerCGA  # noqa: E402

DATASET_ID = 901
DATASET = f"Dataset{DATASET_ID}_Synth"
QUICK_TRAINER = '''
import torch
from cga_model.nn.loss_config import LossConfig
from cga_model.nnunet.trainer import nnUNetTrainerCGA


class nnUNetTrainerCGA_quick(nnUNetTrainerCGA):
    """One epoch of two iterations; inter-class loss from the start; no mirroring (time)."""

    loss_config = LossConfig(inter_start_epoch=0)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1, 2, 1

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, patch, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, patch, None
'''


class SmallSampleFingerprint(DatasetFingerprintExtractor):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_foreground_voxels_for_intensitystats = 1e5


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet")
    paths = {name: root / name for name in ("synth", "raw", "preprocessed", "results", "trainers")}
    for name in ("raw", "preprocessed", "results", "trainers"):
        paths[name].mkdir()
    (paths["trainers"] / "quick_trainers.py").write_text(QUICK_TRAINER)
    env = {
        "nnUNet_raw": str(paths["raw"]),
        "nnUNet_preprocessed": str(paths["preprocessed"]),
        "nnUNet_results": str(paths["results"]),
        "nnUNet_extTrainer": str(paths["trainers"]),
        "nnUNet_def_n_proc": "1",
        "nnUNet_n_proc_DA": "1",
    }
    assert cli.main(["synth", str(paths["synth"]), "--cases", "5", "--shape", "32", "32", "32"]) == 0
    assert cli.main(["nnunet-convert", "--data", str(paths["synth"]), "--out", str(paths["raw"] / DATASET)]) == 0
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        extract_fingerprint_dataset(
            DATASET_ID, SmallSampleFingerprint, num_processes=1, check_dataset_integrity=True, show_progress_bar=False
        )
        plan_experiments([DATASET_ID])
        preprocess([DATASET_ID], configurations=("3d_fullres",), num_processes=(1,), show_progress_bar=False)
    training = subprocess.run(
        [
            sys.executable,
            "-m",
            "cga_model",
            "nnunet-train",
            str(DATASET_ID),
            "3d_fullres",
            "0",
            "-tr",
            "nnUNetTrainerCGA_quick",
            "-device",
            "cpu",
        ],
        env={**os.environ, **env, "nnUNet_n_proc_DA": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert training.returncode == 0, training.stdout[-3000:] + training.stderr[-3000:]
    model = paths["results"] / DATASET / "nnUNetTrainerCGA_quick__nnUNetPlans__3d_fullres"
    return {**paths, "env": env, "model": model, "log": training.stdout}


def test_convert_writes_consecutive_labels_and_dataset_json(pipeline):
    raw = pipeline["raw"] / DATASET
    info = json.loads((raw / "dataset.json").read_text())
    assert info["labels"] == {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}
    assert info["regions_class_order"] == [1, 2, 3]
    assert info["channel_names"] == {"0": "FLAIR", "1": "T1ce", "2": "T1", "3": "T2"}
    assert info["numTraining"] == 5 and info["file_ending"] == ".nii.gz"
    for case_files in find_cases(pipeline["synth"]):
        case = load_case(case_files)
        labels = np.asarray(nib.load(raw / "labelsTr" / f"{case.case_id}.nii.gz").dataobj)
        assert labels.dtype == np.uint8
        for k, value in enumerate((0, 2, 1, 3)):  # background, necrosis, edema, enhancing -> region-training labels
            np.testing.assert_array_equal(labels == value, case.classes == k)
        for channel in range(4):
            image = nib.load(raw / "imagesTr" / f"{case.case_id}_{channel:04d}.nii.gz")
            np.testing.assert_array_equal(np.asarray(image.dataobj), case.image[channel])
            np.testing.assert_array_equal(image.affine, case.reference.affine)


def test_convert_labels_target_and_overwrite(pipeline, tmp_path, capsys):
    out = tmp_path / "Dataset902_Labels"
    assert cli.main(["nnunet-convert", "--data", str(pipeline["synth"]), "--out", str(out), "--target", "labels"]) == 0
    info = json.loads((out / "dataset.json").read_text())
    assert list(info["labels"].values()) == [0, 1, 2, 3] and "regions_class_order" not in info
    assert cli.main(["nnunet-convert", "--data", str(pipeline["synth"]), "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert cli.main(["nnunet-convert", "--data", str(pipeline["synth"]), "--out", str(out), "--overwrite"]) == 0
    assert "regions_class_order" in json.loads((out / "dataset.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset902_Labels"]  # no partial or old folders left


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nnunet-convert", "--data", "{synth}", "--out", "{tmp}/Labels"], "must be named DatasetXXX_Name"),
        (["nnunet-convert", "--data", "{tmp}/missing", "--out", "{tmp}/Dataset903_X"], "does not exist"),
    ],
)
def test_convert_errors_are_one_line(pipeline, tmp_path, capsys, argv, message):
    argv = [a.format(synth=pipeline["synth"], tmp=tmp_path) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cga nnunet-convert: error: ") and message in err and err.count("\n") == 1


def test_training_adds_the_guided_terms_and_saves_a_checkpoint(pipeline):
    fold = pipeline["model"] / "fold_0"
    log = pipeline["log"]  # nnU-Net prints its training log to the console too
    # the stage depends on the plan nnU-Net makes for the synthetic cases (the placement rule is tested on its own)
    head = r"category-guided attention: input head, rate 4, update at encoder\.stages\.\d, 4 categories, hard masks"
    assert re.search(head, log), log[-2000:]
    terms = re.search(r"nnU-Net ([-\d.]+), attention MSE ([-\d.]+), inter-class ([-\d.]+)", log)
    assert terms is not None and float(terms[2]) > 0 and float(terms[3]) < 0  # paper form: log(1 / (1 + D)) < 0
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)  # nnU-Net's own file
    assert checkpoint["trainer_name"] == "nnUNetTrainerCGA_quick"
    assert {"head.conv1.weight", "head.conv3.bias"} <= set(checkpoint["network_weights"])
    summary = json.loads((fold / "validation" / "summary.json").read_text())  # nnU-Net's final validation ran
    assert set(summary["mean"]) == {"(1, 2, 3)", "(2, 3)", "(3,)"}


def test_predictor_rebuilds_the_network_and_predicts(pipeline, tmp_path, monkeypatch):
    for key, value in pipeline["env"].items():
        monkeypatch.setenv(key, value)
    predictor = nnUNetPredictor(use_mirroring=False, device=torch.device("cpu"), allow_tqdm=False)
    with nnunet_trainer_lookup():
        predictor.initialize_from_trained_model_folder(str(pipeline["model"]), use_folds=(0,))
    assert isinstance(predictor.network, GuidedNetwork)
    saved = torch.load(pipeline["model"] / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    for key, value in predictor.network.state_dict().items():
        torch.testing.assert_close(value, saved["network_weights"][key], rtol=0, atol=0)
    case = find_cases(pipeline["synth"])[0].case_id
    images = [str(pipeline["raw"] / DATASET / "imagesTr" / f"{case}_{c:04d}.nii.gz") for c in range(4)]
    (tmp_path / "pred").mkdir()
    predictor.predict_from_files_sequential([images], str(tmp_path / "pred"))
    prediction = nib.load(tmp_path / "pred" / f"{case}.nii.gz")
    assert prediction.shape == nib.load(images[0]).shape
    assert set(np.unique(np.asarray(prediction.dataobj)).tolist()) <= {0, 1, 2, 3}
    assert predictor.network.last_result.attention.shape[1] == 4  # the guided path ran inside nnU-Net's sliding window
    # nnU-Net copied dataset.json, cga_source included, beside its predictions: they restore to the cohort's values
    assert (
        cli.main(["nnunet-restore", "--predictions", str(tmp_path / "pred"), "--out", str(tmp_path / "restored")]) == 0
    )
    values = np.asarray(prediction.dataobj)
    restored = np.asarray(nib.load(tmp_path / "restored" / f"{case}.nii.gz").dataobj)
    source = json.loads((pipeline["raw"] / DATASET / "dataset.json").read_text())["cga_source"]["labels"]
    for v in np.unique(values):
        assert set(np.unique(restored[values == v]).tolist()) == {int(source[str(v)].split()[0])}


def test_trainer_reloads_its_checkpoint(pipeline, monkeypatch):
    for key, value in pipeline["env"].items():
        monkeypatch.setenv(key, value)
    trainer_class = find_trainer_class("nnUNetTrainerCGA_quick")
    plans = json.loads((pipeline["model"] / "plans.json").read_text())
    dataset = json.loads((pipeline["model"] / "dataset.json").read_text())
    trainer = trainer_class(
        plans={**plans, "continue_training": True},
        configuration="3d_fullres",
        fold=0,
        dataset_json=dataset,
        device=torch.device("cpu"),
    )
    trainer.load_checkpoint(str(pipeline["model"] / "fold_0" / "checkpoint_final.pth"))
    assert trainer.current_epoch == 1
    saved = torch.load(pipeline["model"] / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    for key, value in trainer.guided_network().state_dict().items():
        torch.testing.assert_close(value, saved["network_weights"][key], rtol=0, atol=0)


def test_trainer_folder_is_found_by_nnunets_external_search():
    found = recursive_find_python_class(
        TRAINER_DIR, "nnUNetTrainerCGA", None, base_folder=TRAINER_DIR, cleanup_imports_from_base_folder=True
    )
    assert found is nnUNetTrainerCGA


def _tiny_unet(deep_supervision: bool) -> PlainConvUNet:
    return PlainConvUNet(
        4,
        3,
        (8, 16, 32),
        torch.nn.Conv3d,
        3,
        ((1, 1, 1), (2, 2, 2), (2, 2, 2)),
        2,
        3,
        2,
        norm_op=torch.nn.InstanceNorm3d,
        nonlin=torch.nn.LeakyReLU,
        deep_supervision=deep_supervision,
    )


def test_guided_network_keeps_nnunet_outputs_and_updates_the_bottleneck():
    torch.manual_seed(0)
    network = guided_network(
        _tiny_unet(True), pool_op_kernel_sizes=((1, 1, 1), (2, 2, 2), (2, 2, 2)), num_input_channels=4, num_categories=4
    )
    x = torch.randn(2, 4, 16, 16, 16)
    outputs = network(x)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 16, 16, 16), (2, 3, 8, 8, 8)]  # one output per decoder stage
    assert tuple(network.last_result.attention.shape) == (2, 4, 4, 4, 4)  # rate 4 = total stride
    assert tuple(network.last_result.prototypes.shape) == (2, 4, 32)
    network.decoder.deep_supervision = False  # what nnU-Net's set_deep_supervision_enabled does
    single = network(x)
    assert torch.equal(single, outputs[0])
    host = network.detach()
    assert not torch.allclose(host(x), single)  # the intra-class update changed the bottleneck


def test_guided_network_wraps_nnunets_residual_encoder_unet():
    strides = ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2))
    host = ResidualEncoderUNet(
        4,
        4,
        (8, 16, 32, 32),
        torch.nn.Conv3d,
        3,
        strides,
        (1, 2, 2, 2),
        3,
        (1, 1, 1),
        norm_op=torch.nn.InstanceNorm3d,
        nonlin=torch.nn.LeakyReLU,
        deep_supervision=True,
        block=BasicBlockD,
    )
    network = guided_network(host, pool_op_kernel_sizes=strides, num_input_channels=4, num_categories=4)
    outputs = network(torch.randn(1, 4, 32, 32, 32))
    assert [o.shape[-1] for o in outputs] == [32, 16, 8]
    assert network.module_name == "encoder.stages.3" and network.head.rate == 8
    assert tuple(network.last_result.attention.shape) == (1, 4, 4, 4, 4)


def test_guided_network_at_an_earlier_stage():
    network = guided_network(
        _tiny_unet(False),
        pool_op_kernel_sizes=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
        num_input_channels=4,
        num_categories=4,
        stage=1,
    )
    network(torch.randn(1, 4, 16, 16, 16))
    assert network.module_name == "encoder.stages.1" and network.head.rate == 2
    assert (
        tuple(network.last_result.attention.shape) == (1, 4, 8, 8, 8) and network.last_result.prototypes.shape[-1] == 16
    )
    with pytest.raises(ValueError, match="update stage 3 does not exist"):
        guided_network(
            _tiny_unet(False),
            pool_op_kernel_sizes=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
            num_input_channels=4,
            num_categories=4,
            stage=3,
        )


def test_guided_loss_adds_attention_and_inter_terms_under_deep_supervision():
    torch.manual_seed(0)
    network = guided_network(
        _tiny_unet(True), pool_op_kernel_sizes=((1, 1, 1), (2, 2, 2), (2, 2, 2)), num_input_channels=4, num_categories=4
    )
    x = torch.randn(2, 4, 16, 16, 16)
    regions = torch.zeros(2, 3, 16, 16, 16)
    regions[:, 0, 2:12, 2:12, 2:12] = 1
    regions[:, 1, 4:10, 4:10, 4:10] = 1
    regions[:, 2, 5:8, 5:8, 5:8] = 1
    targets = [regions, regions[:, :, ::2, ::2, ::2]]
    host_loss = DeepSupervisionWrapper(torch.nn.BCEWithLogitsLoss(), (0.6, 0.4))
    loss = GuidedLoss(host_loss, network, regions=True, config=LossConfig(attention_weight=2.0, inter_weight=0.5))
    outputs = network(x)
    result = network.last_result
    categories = target_categories(regions, regions=True)
    expected_host = host_loss(outputs, targets)
    expected_attention = attention_mse_loss(result.attention, categories)
    torch.testing.assert_close(loss(outputs, targets), expected_host + 2.0 * expected_attention)
    loss.inter_active = True
    total = loss(outputs, targets)
    torch.testing.assert_close(
        total, expected_host + 2.0 * expected_attention + 0.5 * inter_class_term(result.prototypes, result.counts)
    )
    total.backward()
    assert network.head.conv1.weight.grad.abs().sum() > 0  # the attention head learns from the MSE
    dice_ce = GuidedLoss(host_loss, network, regions=True, config=LossConfig(attention_loss="dice_ce"))
    outputs = network(x)
    expected = host_loss(outputs, targets) + attention_loss(network.last_result.attention, categories, "dice_ce")
    torch.testing.assert_close(dice_ce(outputs, targets), expected)


def test_guided_loss_label_targets_use_label_values_as_categories():
    torch.manual_seed(0)
    network = guided_network(
        _tiny_unet(False),
        pool_op_kernel_sizes=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
        num_input_channels=4,
        num_categories=4,
    )
    labels = torch.randint(0, 3, (2, 1, 16, 16, 16))
    host_loss = torch.nn.CrossEntropyLoss()
    loss = GuidedLoss(
        lambda output, target: host_loss(output, target[:, 0].long()),
        network,
        regions=False,
        config=LossConfig(attention_weight=1.0, inter_weight=0.0),
    )
    outputs = network(torch.randn(2, 4, 16, 16, 16))
    expected = host_loss(outputs, labels[:, 0]) + attention_mse_loss(network.last_result.attention, labels[:, 0])
    torch.testing.assert_close(loss(outputs, labels), expected)


def test_target_categories_regions_and_labels():
    regions = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]]).view(1, 3, 4)
    assert target_categories(regions, regions=True).tolist() == [[0, 1, 2, 3]]
    labels = torch.tensor([[[0, 2, 1, 3]]], dtype=torch.int16)
    assert target_categories(labels, regions=False).tolist() == [[0, 2, 1, 3]]


def test_attention_rate_follows_the_plans():
    assert attention_rate([[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]) == 8
    assert attention_rate([[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2]]) == 2
    assert attention_rate([[1, 1], [2, 2]]) == 2
    with pytest.raises(ValueError, match="attention rate 3"):
        attention_rate([[1, 1, 1], [3, 3, 3]])


def test_nnunet_train_errors_are_one_line(pipeline, capsys, monkeypatch):
    for key, value in pipeline["env"].items():
        monkeypatch.setenv(key, value)
    if not torch.cuda.is_available():
        assert cli.main(["nnunet-train", str(DATASET_ID), "3d_fullres", "0"]) == 2
        assert "pass -device cpu" in capsys.readouterr().err
    for options, message in (
        (["-device", "cpu"], "Could not find a dataset with the ID 977"),
        (["-device", "cpu", "-bogus"], "unrecognized arguments: -bogus"),
    ):
        assert cli.main(["nnunet-train", "977", "3d_fullres", "0", *options]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cga nnunet-train: error: ") and message in err and err.count("\n") == 1
