"""An export is kept only if it computes what the eager PyTorch model computes.

Inputs are a few real validation samples of the run (one per class, round-robin) when its split.csv
(and, for images, the files) are there, else seeded random tensors or fixed sentences. Each is run through
both models at the full batch and at batch 1 (so a batch axis that was frozen at export time fails here,
not in production), a text model also at a second sequence length. What must agree is what a prediction
reads from the outputs, by the bundle's task:

  single-label   logits within `atol`, and every top-1 class the same (or tied with it within `atol`)
  multi-label    each label's sigmoid probability within `atol`, and the same labels at or above their
                 thresholds (a label whose probability sits within `atol` of its threshold may go either way)
  regression     the number within `atol` times the target's training standard deviation (the tolerance
                 on the standardised scale the head was trained on) plus float32's rounding of its size
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from graft.data.images import load_image
from graft.errors import GraftError
from graft.runs.locate import Located
from graft.runs.split import ImageRow, read_split

ATOL = 1e-4  # on logits; float32 kernels of different runtimes differ by ~1e-6..1e-5 on these models
RTOL = 1e-6  # regression: float32 holds ~7 digits, so a number near 1e5 is only known to ~0.01
Inputs = tuple[
    torch.Tensor, ...
]  # the model's positional inputs: (images,) or (input_ids, ..., attention_mask)


@dataclass
class Check:
    inputs: str  # what was compared: "6 validation images", "4 random inputs", "6 validation texts"
    batch_sizes: list[int]
    max_abs_diff: float  # on `compared`, over every input and batch size
    agree: int  # rows of `n` whose prediction is the same (`agreement`)
    n: int
    atol: float  # the limit on max_abs_diff
    compared: str = "logit"  # "logit", "probability" (multi-label), or the regression target's name
    agreement: str = "same top-1 class"

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.inputs} at batch {' and '.join(map(str, self.batch_sizes))}: "
                f"max |{self.compared} diff| {self.max_abs_diff:.2g}, {self.agreement} on {self.agree}/{self.n} rows")  # fmt: skip


def verification_inputs(
    located: Located, transform: Callable, input_size: list[int], n: int = 6
) -> tuple[list[Inputs], str]:
    """[((n, 3, H, W),)] model inputs and what they are."""
    if located.run is not None:
        try:
            rows = read_split(located.run, "val")
        except GraftError:  # no split.csv (or a damaged one): random inputs
            rows = []
        by_class: dict[str, list] = {}
        for row in rows:
            if isinstance(row, ImageRow) and row.path.is_file():
                by_class.setdefault(row.label, []).append(row.path)
        picked = [files[i] for i in range(n) for files in by_class.values() if i < len(files)][:n]
        if picked:
            batch = torch.stack([transform(load_image(p)) for p in picked])
            return [(batch,)], f"{len(picked)} validation image{'s' * (len(picked) > 1)}"
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(4, *input_size, generator=generator),)], "4 random inputs"


@torch.inference_mode()
def compare(
    eager: nn.Module,
    exported: Callable[..., torch.Tensor],
    cases: Sequence[Inputs],
    what: str,
    fmt: str,
    atol: float = ATOL,
    task_spec: dict[str, Any] | None = None,
) -> Check:
    """Raise GraftError naming the difference when the export disagrees with `eager`. `task_spec`: the
    bundle's (graft.json), which says what a prediction reads from the outputs; none: single-label."""
    eager.eval()
    spec = task_spec or {}
    task = spec.get("name", "single-label")
    limit = atol * float(spec.get("train_std", 1.0)) if task == "regression" else atol
    worst, agree, n = 0.0, 0, 0
    rows = len(cases[0][0])
    batch_sizes = [rows] + ([1] if rows > 1 else [])
    for inputs in cases:
        for size in batch_sizes:
            x = tuple(t[:size].contiguous() for t in inputs)
            expected = eager(*x).float()
            got = torch.as_tensor(exported(*x)).float()
            if got.shape != expected.shape:
                raise GraftError(
                    f"{fmt} export returns shape {tuple(got.shape)} for a batch of {size}, the model "
                    f"{tuple(expected.shape)}; nothing was written"
                )
            if task == "multi-label":
                diff, same = _same_labels(expected, got, spec.get("thresholds"), atol)
            elif task == "regression":
                diff = (got - expected).abs()
                same = (diff <= limit + RTOL * expected.abs()).reshape(size, -1).all(1)
            else:
                diff = (got - expected).abs()
                # The export's top-1 class must be the eager top-1, or tie with it within `atol` (near-equal
                # logits may legitimately swap order under another runtime's rounding).
                chosen = expected.gather(1, got.argmax(1, keepdim=True)).squeeze(1)
                same = chosen >= expected.max(1).values - atol
            worst = max(worst, diff.max().item())
            agree += int(same.sum().item())
            n += size
    compared, agreement = {"multi-label": ("probability", "same labels above threshold"),
                           "regression": (spec.get("target", "value"), f"within {limit:.2g}")}.get(
        task, ("logit", "same top-1 class"))  # fmt: skip
    check = Check(what, batch_sizes, worst, agree, n, limit, compared, agreement)
    if (worst >= limit and task != "regression") or agree < n:
        raise GraftError(f"{fmt} export does not match the PyTorch model on {check.summary()} "
                         f"(limit {atol:g}); nothing was written")  # fmt: skip
    return check


def _same_labels(
    expected: torch.Tensor, got: torch.Tensor, thresholds: list[float] | None, atol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(|probability diff| per element, (B,) rows predicting the same label set) for multi-label logits."""
    p, q = expected.sigmoid(), got.sigmoid()  # (B, C)
    cut = torch.tensor(thresholds if thresholds else [0.5] * p.shape[1], dtype=p.dtype)
    undecided = (p - cut).abs() <= atol  # on its threshold: rounding may put it either side
    return (q - p).abs(), (((p >= cut) == (q >= cut)) | undecided).all(1)
