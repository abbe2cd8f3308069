"""Input validation and mask parsing shared by the reference and the compiled operators.

Every check raises ``TypeError`` (wrong kind of thing) or ``ValueError`` (wrong shape or
value) with a message that names the argument and what was expected. Value checks that need
the data (label range, negative weights) read it on the host only where that costs no
synchronisation (CPU tensors on the C++ kernels); on CUDA and on the Triton path they are
device-side assertions (see ``parse_mask``). While ``torch.compile`` traces, the label range
becomes an assertion in the graph (a compiled op refuses label -1 as eager mode does); the
other value checks are skipped then and for meta tensors; the C++ kernels still refuse
out-of-range labels themselves and the Triton kernels never index memory with a label.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass
class MaskSpec:
    """A validated class mask, flattened over space.

    ``labels``: ``(B, N)`` int64, ``-1`` for ignored voxels (hard masks, else None);
    ``weights``: ``(B, K, N)`` floating (soft masks, else None);
    ``active``: ``(K,)`` bool, the classes the scatter writes back (set last by ``parse_mask``).
    """

    hard: bool
    num_classes: int
    spatial_shape: tuple
    labels: torch.Tensor | None
    weights: torch.Tensor | None
    active: torch.Tensor | None

    def weights_as(self, dtype: torch.dtype) -> torch.Tensor:
        """The soft weights, contiguous, in ``dtype`` (the kernels read them in the features' dtype)."""
        return self.weights.to(dtype).contiguous()


def flatten_features(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, *S)`` -> contiguous ``(B, C, N)`` (one copy for strided or channels-last input)."""
    return x.reshape(x.shape[0], x.shape[1], -1).contiguous()


def check_choice(name: str, value, choices: tuple) -> None:
    """Refuse an option outside ``choices`` (``form``, ``mode``, ...), naming the allowed values."""
    if value not in choices:
        allowed = " or ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def _no_data(t: torch.Tensor) -> bool:
    """True while torch.compile traces or for meta tensors: value checks are impossible then."""
    return torch.compiler.is_compiling() or t.device.type == "meta"


def check_features(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, *spatial), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float16/bfloat16/float32/float64), got {x.dtype}")
    if x.dim() < 3:
        raise ValueError(
            f"{name} must have shape (B, C, *spatial) with at least one spatial dim, got shape {tuple(x.shape)}"
        )
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have B >= 1 and C >= 1, got shape {tuple(x.shape)}")


def check_proto(proto, name: str = "proto") -> None:
    if not isinstance(proto, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, K, C), got {type(proto).__name__}")
    if not proto.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {proto.dtype}")
    if proto.dim() != 3:
        raise ValueError(f"{name} must have shape (B, K, C), got shape {tuple(proto.shape)}")
    if min(proto.shape) < 1:
        raise ValueError(f"{name} must have B >= 1, K >= 1 and C >= 1, got shape {tuple(proto.shape)}")


def check_proto_counts(proto, counts) -> None:
    check_proto(proto)
    if not isinstance(counts, torch.Tensor):
        raise TypeError(f"counts must be a torch.Tensor of shape (B, K), got {type(counts).__name__}")
    if counts.shape != proto.shape[:2]:
        raise ValueError(
            f"counts must have shape (B, K) = {tuple(proto.shape[:2])} to match proto, got {tuple(counts.shape)}"
        )
    if counts.device != proto.device:
        raise ValueError(f"counts is on {counts.device} but proto is on {proto.device}")


def _active_classes(classes: Iterable[int] | None, num_classes: int, device) -> torch.Tensor:
    if classes is None:
        return torch.ones(num_classes, dtype=torch.bool, device=device)
    if isinstance(classes, torch.Tensor):  # a 0-d or 1-D integer tensor of indices
        if classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
            raise ValueError(f"classes must hold class indices in [0, {num_classes}), got a {classes.dtype} tensor")
        classes = classes.reshape(-1).tolist()
    if isinstance(classes, int):
        classes = [classes]
    chosen = list(classes)
    for k in chosen:
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < num_classes:
            raise ValueError(f"classes must hold class indices in [0, {num_classes}), got {chosen!r}")
    active = torch.zeros(num_classes, dtype=torch.bool, device=device)
    active[chosen] = True
    return active


def check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return num_classes


def parse_mask(
    x, mask, *, num_classes=None, ignore_index=None, classes=None, proto=None, host_checks_on_cpu=True
) -> MaskSpec:
    """Validate ``mask`` against features ``x`` ``(B, C, *S)`` (or prototypes ``proto`` ``(B, K, C)``
    when ``x`` is None, as for the scatter) and flatten it over space.

    ``host_checks_on_cpu``: for CPU tensors (``reads_on_host``) the data-dependent checks (label
    range, finite non-negative weights) read the data on the host and raise ``ValueError``
    naming the bad value; otherwise they run on
    the tensors' device as an asynchronous assertion (``torch._assert_async``: no host
    synchronisation; on CUDA a device-side assert at the next synchronisation, on CPU a
    ``RuntimeError`` at once)."""
    if x is not None:
        check_features(x)
        batch, spatial, device = x.shape[0], tuple(x.shape[2:]), x.device
    else:
        check_proto(proto)
        batch, spatial, device = proto.shape[0], None, proto.device
        num_classes = proto.shape[1]  # the scatter takes K from the prototypes
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            "mask must be a torch.Tensor (integer labels (B, *S) or soft weights (B, K, *S)), "
            f"got {type(mask).__name__}"
        )
    if mask.device != device:
        raise ValueError(f"mask is on {mask.device} but the features are on {device}")
    if mask.dtype == torch.bool or mask.is_complex():
        raise TypeError(f"mask must be integer labels or floating weights, got {mask.dtype}")
    host = reads_on_host(host_checks_on_cpu, device)
    if mask.is_floating_point():
        spec = _parse_soft(mask, batch, spatial, num_classes, ignore_index)
        _check_weight_values(spec.weights, host)
    else:
        if num_classes is None:
            raise ValueError("num_classes is required with a hard (integer label) mask")
        spec = _parse_hard(mask, batch, spatial, check_num_classes(num_classes), ignore_index)
        _check_label_values(spec.labels, spec.num_classes, ignore_index, host)
    spec.active = _active_classes(classes, spec.num_classes, device)
    return spec


def reads_on_host(host_checks_on_cpu: bool, device: torch.device) -> bool:
    """Value checks may read the data on the host only where that waits for no device: CPU tensors."""
    return host_checks_on_cpu and device.type == "cpu"


def _check_label_values(labels: torch.Tensor, num_classes: int, ignore_index, host: bool) -> None:
    """Labels (``-1`` = ``ignore_index``) must lie in ``[0, K)``, or be -1 when there is an ignore_index."""
    if labels.device.type == "meta" or not labels.numel():
        return
    allowed = f"[0, {num_classes})" + (f" or equal ignore_index={ignore_index}" if ignore_index is not None else "")
    lowest = 0 if ignore_index is None else -1
    if not host or torch.compiler.is_compiling():  # traced graphs assert too: -1 means "ignored" to the kernels
        torch._assert_async(
            ((labels >= lowest) & (labels < num_classes)).all(), f"cga_kernels: mask labels must be in {allowed}"
        )
        return
    lo, hi = (v.item() for v in torch.aminmax(labels))
    if lo < lowest or hi >= num_classes:
        raise ValueError(f"mask labels must be in {allowed}, found {lo if lo < lowest else hi}")


def _check_weight_values(weights: torch.Tensor, host: bool) -> None:
    """Soft weights must be finite and non-negative."""
    if _no_data(weights) or not weights.numel():
        return
    if not host:
        torch._assert_async(
            (torch.isfinite(weights) & (weights >= 0)).all(),
            "cga_kernels: soft mask weights must be finite and non-negative",
        )
        return
    lo, hi = (v.item() for v in torch.aminmax(weights))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("soft mask weights must be finite")
    if lo < 0:
        raise ValueError(f"soft mask weights must be non-negative, found {lo}")


def _parse_hard(mask, batch, spatial, num_classes, ignore_index) -> MaskSpec:
    if mask.dim() < 2 or mask.shape[0] != batch or (spatial is not None and tuple(mask.shape[1:]) != spatial):
        expected = f"(B, *S) = {(batch,) + spatial}" if spatial is not None else f"(B={batch}, *S)"
        raise ValueError(f"hard mask must have shape {expected}, got {tuple(mask.shape)}")
    if ignore_index is not None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(
                f"ignore_index={ignore_index} is a class index in [0, {num_classes}); choose a value outside"
            )
    labels = mask.reshape(batch, -1).long()
    if ignore_index is not None:
        labels = torch.where(labels == ignore_index, -1, labels)
    return MaskSpec(True, num_classes, tuple(mask.shape[1:]), labels.contiguous(), None, None)


def _parse_soft(mask, batch, spatial, num_classes, ignore_index) -> MaskSpec:
    if mask.dim() < 3 or mask.shape[0] != batch or (spatial is not None and tuple(mask.shape[2:]) != spatial):
        expected = (
            f"(B, K, *S) = ({batch}, K, {', '.join(map(str, spatial))})"
            if spatial is not None
            else f"(B={batch}, K, *S)"
        )
        raise ValueError(f"soft mask must have shape {expected}, got {tuple(mask.shape)}")
    k = mask.shape[1]
    if num_classes is not None and check_num_classes(num_classes) != k:
        raise ValueError(
            f"soft mask has K={k} classes in dim 1 but num_classes (or the prototypes' K) is {num_classes}"
        )
    if ignore_index is not None:
        raise ValueError("ignore_index applies to hard (integer) masks only; give ignored voxels zero weight instead")
    return MaskSpec(False, k, tuple(mask.shape[2:]), None, mask.reshape(batch, k, -1), None)
