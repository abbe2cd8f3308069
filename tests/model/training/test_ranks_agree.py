"""Under DDP a refusal on one rank stops every rank at once (``DistributedRun.agree``), with one error line.

The two ranks are started by hand (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT`` as torchrun sets
them), without torchrun's agent, which would otherwise kill a rank left waiting."""

import os
import socket
import subprocess
import sys

import pytest

from cga_model.data.synth import synthesize_cohort
from cga_model.training.distributed import DistributedRun

FLAGS = ["--epochs", "1", "--crop", "8", "8", "8", "--batch-size", "1", "--base-channels", "4", "--workers", "0"]
WAIT_S = 240  # a rank still running after this is hanging (a normal start takes seconds)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _two_ranks(argv: list, cwd) -> list:
    """``python -m cga_model *argv`` as ranks 0 and 1 of one gloo group: ``[(exit status, stderr)]`` per rank."""
    env = dict(os.environ, WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), OMP_NUM_THREADS="1")
    ranks = [
        subprocess.Popen(
            [sys.executable, "-m", "cga_model", *argv],
            env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    try:
        return [(rank.wait(timeout=WAIT_S), rank.stderr.read()) for rank in ranks]
    finally:
        for rank in ranks:
            rank.kill()


@pytest.mark.slow
@pytest.mark.parametrize(
    "refused, extra, expected",
    [
        ("an occupied --out, which rank 0 alone checks", [], "already holds a run"),
        ("a bad flag, which every rank refuses alike", ["--lr", "-1"], "--lr must be"),
    ],
)
def test_a_refusal_stops_both_ranks_with_one_error_line(tmp_path, refused, extra, expected):
    """Rank 1 must stop with rank 0, exit 2 and print nothing: one error line in all (before: rank 1 failed later
    in its first collective with gloo's "Connection closed by peer", or printed the same refusal again)."""
    data, out = tmp_path / "data", tmp_path / "run"
    synthesize_cohort(data, cases=2, seed=1, shape=(16, 16, 16), progress=False)
    if not extra:
        out.mkdir()
        (out / "metrics.jsonl").write_text("{}\n")  # an earlier run's log: refused without --resume or --overwrite
    argv = ["train", "--data", str(data), "--out", str(out), *FLAGS, *extra]
    (code0, err0), (code1, err1) = _two_ranks(argv, tmp_path)
    lines0 = [line for line in err0.splitlines() if line.startswith("cga ")]
    assert code0 == 2 and len(lines0) == 1 and expected in lines0[0], (refused, err0)
    assert code1 == 2 and "cga train" not in err1 and "Traceback" not in err1, (refused, err1)


def test_agree_without_ddp_is_the_step_itself():
    ddp = DistributedRun("cpu")
    assert not ddp.enabled and ddp.agree(lambda: 3) == 3
    with pytest.raises(ValueError, match="refused"):
        ddp.agree(lambda: (_ for _ in ()).throw(ValueError("refused")))


def test_a_process_group_the_caller_started_stays_open(tmp_path, monkeypatch):
    """``close()`` ends only a group the run started: a caller's own group (here one rank, by file) stays theirs."""
    import torch.distributed as dist

    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it; the caller's group decides the ranks
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = DistributedRun("cpu")
        assert ddp.enabled and not ddp.owns_group and ddp.rank == 0 and ddp.world == 1
        ddp.close()
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()
