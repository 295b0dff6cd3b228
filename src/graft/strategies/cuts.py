"""Running a model from the middle: a frozen prefix computed once, its output replayed every epoch.

While gradual unfreezing trains only the top of a network, every epoch pushes the same images through
the same frozen bottom layers; on a CPU that forward pass is most of an epoch (the early layers work at
the highest resolution). When the images look the same every epoch, graft runs the frozen prefix once
over the data (data/feature_cache.py stores the result), and the stage trains the rest from there.

Where "the rest" begins comes from the model's own call order, not from hard-coded names: one forward
pass with hooks on every module finds the first module that owns a trainable parameter; the modules that
ran to completion before it are the prefix. `Suffix` then calls the model itself with those modules
replaced by identities, so the model's own forward code (dropout, drop-path, pooling, the head) runs
the rest unchanged and the checkpointed model is the model.

The activations are recorded in eval mode, which is how frozen groups run during training anyway (their
BatchNorm statistics and dropout hold; strategies/stages.py), so a stage from its cut trains as it would
through the images with augmentation off; the one difference would be a parameter-free dropout module
between frozen groups, which no timm or torchvision CNN we checked has.

A cut is used only once it is verified: in eval mode, the suffix on the prefix's output must reproduce
the model's logits on real images (or texts: a transformer encoder's layers run in a loop of modules, so
the cut falls between two layers, and the stored activation is each text's hidden states). Models whose forward does anything between prefix and suffix outside
a module (ViT adds its position embedding, some models flatten) fail the check and train through the
images, as without a cut.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

# Repeats of a timing, the fastest kept (the cut's replay here, the forward in training/frozen.py).
TIMINGS = 5


@dataclass(frozen=True)
class Cut:
    output: str  # the last prefix module to finish: its output is what the suffix starts from
    prefix: tuple[str, ...]  # the outermost modules that run before the trainable part (identities in Suffix)
    shape: tuple[int, ...]  # one sample's activation at the cut (texts: one token's)
    per_token: bool = False  # texts: the activation is (tokens, hidden), as long as each text
    replay_seconds: float = field(default=0.0, compare=False)  # the suffix on the verification inputs

    @property
    def sample_bytes(self) -> int:
        """Bytes stored per sample (texts: per token), as float32."""
        return 4 * int(torch.Size(self.shape).numel())


def _identity(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return x


class Suffix(nn.Module):
    """The model from a cut on: `Suffix(model, cut)(activation)` == `model(images)` when `activation` is the
    prefix's output on `images`. The prefix modules are bypassed for the duration of each call only.

    Texts: `x` is a batch {"hidden": (B, L, H) activation, "attention_mask": (B, L)}. The model is called
    with placeholder token ids and that mask; its first prefix module (the embeddings) returns the stored
    activation, the later ones pass it on, and the model builds its attention mask as it always does."""

    def __init__(self, model: nn.Module, cut: Cut):
        super().__init__()
        self.model, self.cut = model, cut

    def forward(self, x: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        bypassed = [self.model.get_submodule(name) for name in self.cut.prefix]
        for module in bypassed:  # an instance attribute shadows the class's forward; hooks still run
            module.forward = _identity
        if isinstance(x, dict):
            hidden = x["hidden"]
            bypassed[0].forward = lambda *args, **kwargs: hidden
            x = {"input_ids": x["attention_mask"].new_zeros(x["attention_mask"].shape),
                 "attention_mask": x["attention_mask"]}  # fmt: skip
        try:
            return self.model(x)
        finally:
            for module in bypassed:
                del module.forward


@torch.inference_mode()
def find_cut(
    model: nn.Module, trainable: set[str], images: torch.Tensor | dict[str, torch.Tensor]
) -> Cut | None:
    """Where the parameters named in `trainable` start being used, as a verified Cut; None if the model
    has no clean cut there (something outside a module sits between the two parts, or the first
    trainable parameter belongs to the model itself rather than to a sub-module)."""
    owners = {name.rpartition(".")[0] for name in trainable}
    if "" in owners:
        return None
    was_training = model.training
    model.eval()
    try:
        events, outputs, logits = _call_order(model, images)
        first = next((i for i, (kind, name) in enumerate(events) if kind == "start" and name in owners), 0)
        late = {name for kind, name in events[first:] if kind == "start"}  # also called after the cut
        done = [name for kind, name in events[:first] if kind == "end" and name not in late]
        outermost = [n for n in done if not any(n.startswith(f"{other}.") for other in done)]
        if not outermost or not isinstance(outputs[outermost[-1]], torch.Tensor):
            return None  # nothing runs before the trainable part, or no single tensor crosses the cut
        activation = outputs[outermost[-1]]
        text = isinstance(images, dict)
        shape = tuple(activation.shape[2:] if text else activation.shape[1:])
        cut = Cut(outermost[-1], tuple(dict.fromkeys(outermost)), shape, per_token=text)
        replay = {"hidden": activation, "attention_mask": images["attention_mask"]} if text else activation
        try:
            replayed, seconds = Suffix(model, cut)(replay), math.inf
            # Timed after that first call (which pays one-off costs): the fastest of TIMINGS, so a busy
            # machine's stall does not make a cheap suffix look dear (on a shared 2-core machine at load 10
            # the fastest of two once dropped every cut of a text model).
            for _ in range(TIMINGS):
                started = time.perf_counter()
                Suffix(model, cut)(replay)
                seconds = min(seconds, time.perf_counter() - started)
        except Exception:  # noqa: BLE001 - the suffix cannot take the activation (ViT: position embedding)
            return None
        same = replayed.shape == logits.shape and torch.allclose(replayed, logits, rtol=1e-4, atol=1e-5)
        return Cut(cut.output, cut.prefix, cut.shape, cut.per_token, seconds) if same else None
    finally:
        model.train(was_training)


def _call_order(
    model: nn.Module, images: torch.Tensor
) -> tuple[list[tuple[str, str]], dict[str, object], torch.Tensor]:
    """One forward pass recording ("start"|"end", module name) for every sub-module call, each module's
    last output, and the logits."""
    events: list[tuple[str, str]] = []
    outputs: dict[str, object] = {}

    def before(name: str):
        return lambda _module, _args: events.append(("start", name))

    def after(name: str):
        def hook(_module, _args, output):
            events.append(("end", name))
            outputs[name] = output

        return hook

    handles = []
    for name, module in model.named_modules():
        if name:
            handles += [
                module.register_forward_pre_hook(before(name)),
                module.register_forward_hook(after(name)),
            ]
    try:
        logits = model(images)
    finally:
        for handle in handles:
            handle.remove()
    return events, outputs, logits
