"""Which path a volume takes through the network: the whole box in one pass, or the fewest windows that fit.

The memory a forward pass needs is *measured*, not computed from the architecture: the model runs
once under ``torch.no_grad`` on a small probe (``PROBE``, 32^3) while a dispatch mode adds up the
bytes of every tensor storage alive after each operator (``live_tensor_peak``). Every activation of
the CGA U-Net grows with the voxel count (the SAM's attention is ``K x N/r^3``, not ``N^2``), so
the peak is linear in the voxels: ~179 bytes per voxel at base width 8, ~357 at 16 (measured with
32^3 and 64^3 probes, float32). ``forward_bytes`` scales the probe's bytes per voxel by the
window's voxels and the batch. Convolution work buffers (oneDNN) are not tensors and are not
counted: the default budget keeps ``SAFETY`` of the free memory for them and for everything else.

``plan_inference`` picks, for a padded box and a memory budget:

- by default, for a network whose normalisation depends on the field of view (GroupNorm or
  InstanceNorm: ``default_whole_box``), ``DEFAULT_WINDOW`` (128^3, cut to the box) windows at
  ``WINDOW_OVERLAP`` overlap with Gaussian blending, when one fits; on held-out hard full-size cases
  they scored about 0.05-0.06 higher Dice per region than the whole box in one pass, at about 3x the
  CPU time (``benchmarks/prediction_paths.py``);
- by default for any other network (BatchNorm, the default), and with ``whole_box`` (``--whole-box``)
  for any, the whole box in one pass when it fits (the SAM's prototypes per tile of the training crop by default,
  ``cga_model.nn.prototype_field``);
- else (neither fits) the fewest windows (multiples of ``SIZE_MULTIPLE``) whose forward pass fits;
- windows of ``roi`` when the user forces them (``--roi`` / ``--overlap``), or of the fixed input
  shape of an exported model that has one;

and how many flipped copies (TTA) go through the network in one batch.
"""

from __future__ import annotations

import itertools
import math
import re
import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .config import SIZE_MULTIPLE

PROBE = (32, 32, 32)  # the size the forward pass is measured at
SAFETY = 0.5  # fraction of the free memory the default budget uses
WINDOW_OVERLAP = 0.5  # overlap of the windows chosen when the user does not force an --overlap
DEFAULT_WINDOW = (128, 128, 128)  # the default window (cut to the box), and the default of --roi
#: Normalisations whose statistics come from the input they are given: a network with one is not the same
#: function on a window and on the whole box.
FIELD_NORMS = (torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.modules.instancenorm._InstanceNorm)
_UNITS = {"": 2**20, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}  # a bare number is MB


class _LiveBytes(TorchDispatchMode):
    """Adds up the bytes of the tensor storages operators create while they are alive; keeps the peak."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.seen: set[int] = set()

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Unless a mode says False here, torch wraps its __torch_dispatch__ to keep torch.compile out, and that wrap
        # imports torch._dynamo on first use: a second or more of a cold `cga predict`. This mode is never compiled.
        return False

    def _free(self, key: int, nbytes: int) -> None:
        self.seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                if id(storage) not in self.seen:
                    self.seen.add(id(storage))
                    self.live += storage.nbytes()
                    weakref.finalize(storage, self._free, id(storage), storage.nbytes())
        self.peak = max(self.peak, self.live)
        return out


def live_tensor_peak(fn, *args) -> int:
    """Peak bytes of the tensors created by ``fn(*args)`` and alive at the same time (inputs not counted)."""
    with _LiveBytes() as counter:
        fn(*args)
    return counter.peak


_PER_VOXEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@torch.no_grad()
def bytes_per_voxel(model: torch.nn.Module, in_channels: int, device="cpu") -> float:
    """Peak tensor bytes of one ``model`` forward pass (``no_grad``, batch 1) per input voxel, measured at
    ``PROBE`` in eval mode on ``device`` (the model's), once per model (cached)."""
    if model not in _PER_VOXEL:
        probe = torch.zeros((1, in_channels) + PROBE, device=device)
        training = getattr(model, "training", None)  # None: a plain callable (e.g. a wrapped network)
        if training is not None:
            model.eval()  # no batch-norm statistics updated by the probe
        try:
            _PER_VOXEL[model] = live_tensor_peak(model, probe) / math.prod(PROBE)
        finally:
            if training is not None:
                model.train(training)
    return _PER_VOXEL[model]


def parse_memory(text: str) -> int:
    """Bytes of a size such as ``"512MB"``, ``"2GB"``, ``"1.5g"`` or ``"800"`` (a bare number is MB)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text).lower())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"--memory-limit {text!r}: expected a positive size such as 800MB, 2GB or 1.5G")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def free_memory(device) -> int:
    """Bytes free for tensors: ``torch.cuda.mem_get_info`` on CUDA, ``MemAvailable`` of /proc/meminfo on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise OSError("/proc/meminfo has no MemAvailable line; give --memory-limit")


def default_budget(device) -> int:
    """The memory budget when none is given: ``SAFETY`` of the free memory of ``device``."""
    return int(free_memory(device) * SAFETY)


@dataclass(frozen=True)
class InferencePlan:
    """How a padded box ``box`` goes through the network: windows of ``roi`` (``roi == box``: the whole box
    in one pass) with ``overlap``, ``batch`` flipped copies per forward pass, ``estimate`` bytes per pass;
    ``fixed_batch``: every pass must have exactly ``batch`` copies (an export with a fixed batch size)."""

    box: tuple
    roi: tuple
    overlap: float
    batch: int
    estimate: int
    budget: int
    why: str
    fixed_batch: bool = False

    @property
    def whole(self) -> bool:
        return tuple(self.roi) == tuple(self.box)

    def describe(self) -> str:
        """The one log line: the path taken and why (box, estimated memory, budget)."""
        box, mb = "x".join(map(str, self.box)), 2**20
        path = "whole box in one pass" if self.whole else f"windows of {'x'.join(map(str, self.roi))}"
        return (
            f"{path} ({self.why}): box {box}, estimated {self.estimate / mb:.0f} MB per pass "
            f"(batch {self.batch}), budget {self.budget / mb:.0f} MB"
        )


def window_starts(size: int, window: int, step: int) -> list[int]:
    """Start indices of windows of ``window`` every ``step`` voxels covering ``[0, size)``, the last at the end."""
    if size <= window:
        return [0]
    return sorted(set(list(range(0, size - window, step)) + [size - window]))


def window_corners(box, roi, overlap: float) -> list[tuple]:
    """Corners of the windows of ``roi`` covering ``box`` with neighbours sharing ``overlap`` of a window."""
    steps = [max(1, int(r * (1 - overlap))) for r in roi]
    return list(itertools.product(*[window_starts(s, r, st) for s, r, st in zip(box, roi, steps)]))


def _fewest_windows(box, fits) -> tuple | None:
    """The window (multiples of ``SIZE_MULTIPLE``, at least 16 or the box) for which ``fits(roi)`` and the
    count of ``WINDOW_OVERLAP`` windows over ``box`` is smallest (ties: the least voxels computed)."""
    sizes = [range(min(2 * SIZE_MULTIPLE, b), b + 1, SIZE_MULTIPLE) for b in box]
    best, best_key = None, None
    for roi in itertools.product(*sizes):
        if fits(roi):
            count = len(window_corners(box, roi, WINDOW_OVERLAP))
            key = (count, count * math.prod(roi))
            if best_key is None or key < best_key:
                best, best_key = roi, key
    return best


def check_path_options(roi, overlap, whole_box: bool) -> None:
    """Refuses ``whole_box`` with ``roi`` or ``overlap``: one pass and forced windows contradict."""
    if whole_box and (roi is not None or overlap is not None):
        raise ValueError("--whole-box runs one pass, --roi/--overlap force windows: pass one of them, not both")


def field_norms(network: torch.nn.Module) -> list[str]:
    """Sorted class names of the ``FIELD_NORMS`` modules in ``network`` (empty: none)."""
    return sorted({type(m).__name__ for m in network.modules() if isinstance(m, FIELD_NORMS)})


def default_whole_box(model) -> tuple[bool, str]:
    """``(whole_box, why)``: whether ``cga predict`` runs ``model`` over the whole box by default, and why.

    ``model``: a module, or an object whose ``reference_network()`` is the module it runs (``OnnxSegmenter``).
    A network with a normalisation of ``FIELD_NORMS`` (GroupNorm or InstanceNorm) computes its
    statistics over what it is given, so the whole box changes its output against the windows it was
    validated with (0.05-0.06 Dice on hard held-out cases): windows by default. Without one (BatchNorm in
    eval mode uses its running statistics), the convolutions see the same input either way: the whole box.
    """
    network = model.reference_network() if hasattr(model, "reference_network") else model
    if not isinstance(network, torch.nn.Module):
        return False, "a network of unknown normalisation"
    norms = field_norms(network)
    if norms:
        return False, f"its {'/'.join(norms)} statistics depend on the field of view"
    return True, "no normalisation of the network depends on the field of view"


def _chosen_window(box, fits, whole_box: bool, budget: int, reason: str | None) -> tuple:
    """``(window, why)`` when the user forces no window: the whole box (``whole_box``) or ``DEFAULT_WINDOW``
    cut to the box when ``fits`` it, else the fewest windows that fit; ``reason``: why ``whole_box`` is what it is."""
    wanted = tuple(box) if whole_box else tuple(min(r, b) for r, b in zip(DEFAULT_WINDOW, box))
    if fits(wanted):
        if whole_box:
            return wanted, f"{reason or '--whole-box'}, fits the memory budget"
        if wanted == tuple(box):
            return wanted, "the box fits in one default 128^3 window"
        return wanted, "the default windows" + (f": {reason}" if reason else "")
    window = _fewest_windows(box, fits)
    if window is None:
        raise ValueError(f"--memory-limit {budget / 2**20:.0f} MB is too small even for a 16^3 window")
    return window, f"{'the whole box' if whole_box else 'a 128^3 window'} does not fit the memory budget"


def plan_inference(
    box, per_voxel: float, budget: int, *, flips: int = 1, roi=None, overlap=None, fixed=(None, None),
    whole_box=False, reason=None,
):  # fmt: skip
    """The ``InferencePlan`` of a padded ``box`` (multiples of ``SIZE_MULTIPLE``) for a network needing
    ``per_voxel`` bytes per input voxel (``bytes_per_voxel``) and ``flips`` flipped copies (TTA).

    ``roi`` or ``overlap`` given: windows of ``roi`` (default ``DEFAULT_WINDOW``, cut to the box),
    ``overlap`` (default 0.5). ``fixed = (batch, spatial)``: an exported model's fixed input sizes (None:
    free); a fixed spatial shape forces windows of that shape. Otherwise ``DEFAULT_WINDOW`` windows, or the
    whole box in one pass with ``whole_box``, when it fits ``budget``; else the fewest windows that fit.
    ``reason`` (for the log): why ``whole_box`` is what it is when the network chose it (``default_whole_box``).
    Raises ``ValueError`` when not even a 16^3 window fits ``budget``.
    """
    check_path_options(roi, overlap, whole_box)
    fixed_batch, fixed_roi = fixed
    box = tuple(box) if fixed_roi is None else tuple(max(b, r) for b, r in zip(box, fixed_roi))

    def estimate(window, batch=1):
        return int(per_voxel * math.prod(window) * batch)

    if fixed_roi is not None:
        window, why = tuple(fixed_roi), "the exported model has a fixed input shape"
    elif roi is not None or overlap is not None:
        window, why = tuple(min(r, b) for r, b in zip(roi or DEFAULT_WINDOW, box)), "--roi/--overlap given"
    else:
        window, why = _chosen_window(box, lambda r: estimate(r) <= budget, whole_box, budget, reason)
    overlap = WINDOW_OVERLAP if overlap is None else overlap
    batch = max([b for b in range(1, flips + 1) if estimate(window, b) <= budget] or [1])
    batch = batch if fixed_batch is None else fixed_batch
    return InferencePlan(box, window, overlap, batch, estimate(window, batch), budget, why, fixed_batch is not None)
