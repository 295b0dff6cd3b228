"""An export is kept only if it computes what the eager PyTorch model computes.

Inputs are a few real validation samples of the run (one per class, round-robin) when its split.csv
(and, for images, the files) are there, else seeded random tensors or fixed sentences. Each is run through
both models at the full batch and at batch 1 (so a batch axis that was frozen at export time fails here,
not in production), a text model also at a second sequence length; logits must agree within `atol` and
every top-1 class must match.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from graft.data.images import load_image
from graft.errors import GraftError
from graft.runs.locate import Located
from graft.runs.split import ImageRow, read_split

ATOL = 1e-4  # on logits; float32 kernels of different runtimes differ by ~1e-6..1e-5 on these models
Inputs = tuple[
    torch.Tensor, ...
]  # the model's positional inputs: (images,) or (input_ids, ..., attention_mask)


@dataclass
class Check:
    inputs: str  # what was compared: "6 validation images", "4 random inputs", "6 validation texts"
    batch_sizes: list[int]
    max_abs_diff: float  # on logits, over every input and batch size
    top1_agree: int  # of `n`
    n: int
    atol: float

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.inputs} at batch {' and '.join(map(str, self.batch_sizes))}: "
                f"max |logit diff| {self.max_abs_diff:.2g}, same top-1 class on {self.top1_agree}/{self.n} rows")  # fmt: skip


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
) -> Check:
    """Raise GraftError naming the difference when the export disagrees with `eager`."""
    eager.eval()
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
            worst = max(worst, (got - expected).abs().max().item())
            # The export's top-1 class must be the eager top-1, or tie with it within `atol` (near-equal logits
            # may legitimately swap order under another runtime's rounding).
            chosen = expected.gather(1, got.argmax(1, keepdim=True)).squeeze(1)
            agree += (chosen >= expected.max(1).values - atol).sum().item()
            n += size
    check = Check(what, batch_sizes, worst, agree, n, atol)
    if worst >= atol or agree < n:
        raise GraftError(f"{fmt} export does not match the PyTorch model on {check.summary()} "
                         f"(limit {atol:g}); nothing was written")  # fmt: skip
    return check
