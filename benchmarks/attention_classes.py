"""Which classes a trained SAM's attention names: its argmax at the attention's resolution against the truth.

``python -m benchmarks.attention_classes CHECKPOINT [CHECKPOINT ...] --cases CASES [--out DIR]``

``CHECKPOINT``: a ``last.pt`` or ``best.pt`` of ``cga train`` with a SAM; ``CASES``: a folder of case folders
with their segmentations. Each case is normalised as ``cga predict`` does, its brain box (padded to a multiple
of 8) goes through the network in one pass, and the argmax of ``CGAOutput.attention`` is compared with the
truth down-sampled as the attention loss sees it (``guided_map_labels``: the first voxel of every block), over
the voxels inside the brain. The hard-mask update pools and writes back exactly these argmax classes, so this
says whether it works with per-class prototypes or, when the argmax is background everywhere, adds one mean
feature to every voxel.

Per checkpoint: the confusion counts (rows: truth, columns: argmax) and per class its recall (the share of its
voxels the argmax names) and precision (the share of the voxels named that are it). Printed, and written to
``DIR/attention_classes.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cga_model.data.brain import brain_box
from cga_model.data.cases import load_case, normalize
from cga_model.data.layouts import find_cases
from cga_model.inference.predictor import load_predictor
from cga_model.nn.losses import guided_map_labels


def _padded(array: torch.Tensor) -> torch.Tensor:
    """``array (..., X, Y, Z)`` zero-padded at the end of each spatial axis to a multiple of 8."""
    pads = [(-s) % 8 for s in array.shape[-3:]]
    return F.pad(array, [p for pad in reversed(pads) for p in (0, pad)])


@torch.no_grad()
def confusion(model, case) -> np.ndarray:
    """``(K, K)`` counts of (truth, attention argmax) over the brain's voxels at the attention's resolution."""
    image = normalize(case.image.astype(np.float32))
    brain = np.any(image != 0, axis=0)
    box = tuple(slice(a, b) for a, b in brain_box(brain))
    x = _padded(torch.from_numpy(np.ascontiguousarray(image[(slice(None),) + box])))[None]
    labels = _padded(torch.from_numpy(np.ascontiguousarray(case.classes[box])).long())[None]
    inside = _padded(torch.from_numpy(np.ascontiguousarray(brain[box])).long())[None]
    attention = model(x).attention
    truth, named = guided_map_labels(attention, labels)[0], attention[0].argmax(0)
    keep = guided_map_labels(attention, inside)[0] > 0
    k = attention.shape[1]
    pairs = truth[keep] * k + named[keep]
    return torch.bincount(pairs, minlength=k * k).reshape(k, k).numpy()


def shares(counts: np.ndarray) -> tuple:
    """``(recall, precision)`` per class of a confusion ``counts`` (rows truth, columns named); 0 where empty."""
    hits = np.diag(counts).astype(float)
    recall = np.divide(hits, counts.sum(1), out=np.zeros_like(hits), where=counts.sum(1) > 0)
    precision = np.divide(hits, counts.sum(0), out=np.zeros_like(hits), where=counts.sum(0) > 0)
    return recall, precision


def format_counts(name: str, counts: np.ndarray) -> str:
    """The markdown table of one checkpoint: counts per truth class, then recall and precision per class."""
    k = len(counts)
    recall, precision = shares(counts)
    head = "| " + name + " (truth \\ argmax) | " + " | ".join(f"class {j}" for j in range(k)) + " | recall |"
    rows = [head, "|---" + "|---:" * (k + 1) + "|"]
    rows += [f"| class {i} | " + " | ".join(str(int(v)) for v in counts[i]) + f" | {recall[i]:.2f} |" for i in range(k)]
    rows.append("| precision | " + " | ".join(f"{p:.2f}" for p in precision) + " | |")
    return "\n".join(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="last.pt or best.pt files of cga train (with a SAM)")
    parser.add_argument("--cases", required=True, help="a folder of case folders with their segmentations")
    parser.add_argument("--out", default="attention_classes_out", help="folder for attention_classes.md")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = [load_case(source, with_labels=True) for source in find_cases(Path(args.cases))]
    tables = []
    for checkpoint in args.checkpoints:
        model, _ = load_predictor(checkpoint, "cpu")
        if getattr(model, "sam", None) is None:
            parser.error(f"{checkpoint}: the network has no SAM, so no attention to read")
        tables.append(format_counts(Path(checkpoint).parent.name, sum(confusion(model, case) for case in cases)))
    report = "\n\n".join(tables)
    print(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attention_classes.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
