"""``python -m cga_kernels.selftest``: passes here, says what it skipped and why, and catches a wrong op."""

import torch

import cga_kernels as ck
from cga_kernels import selftest


def test_selftest_passes_and_names_what_it_skipped(capsys):
    assert selftest.main(["--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "values+gradients on cpu: 3-D soft, float64" in out and "FAIL" not in out
    assert "timing on cpu: intra_class_update fwd+bwd, hard, 2x128x16x16x16" in out
    if not torch.cuda.is_available():
        assert "cuda  " in out and "skipped: no CUDA device" in out
        assert "GPU compile check" in out and "python -m cga_kernels.triton.aot" in out


def test_selftest_fails_on_a_wrong_operator(monkeypatch, capsys):
    right = ck.intra_class_update

    def off_by_a_little(*args, **kwargs):
        y, proto, counts = right(*args, **kwargs)
        return y + 1e-3, proto, counts

    monkeypatch.setattr(ck, "intra_class_update", off_by_a_little)
    lines = selftest.check_values("cpu")
    assert all(line.failed for line in lines)
    assert all(line.outcome.startswith("FAIL (max |fused - reference| = ") for line in lines)
