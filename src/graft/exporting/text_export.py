"""What exporting a text model adds: plain tensors in (the tokenizer's outputs), the tokenizer beside it.

Exporters take positional tensors and return tensors, so the transformers model is wrapped as
`(input_ids, attention_mask[, token_type_ids]) -> logits` (token_type_ids when the tokenizer makes
them: BERT does, DistilBERT and RoBERTa do not); the batch and sequence axes stay dynamic. The tokenizer's files go next to the export (the bundle
already holds them), and the sidecar says how to call it, so a server needs only the `tokenizers`
package and onnxruntime (graft.predict.onnx does exactly that).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from graft.errors import GraftError
from graft.exporting.verify import Inputs
from graft.runs.locate import Located
from graft.runs.split import TextRow, read_split

SEQUENCE_AXIS_CHECK = 16  # tokens: verification also runs the export at this shorter length
SAMPLE_TEXTS = ("a short sentence to compare the export with the model",
                "another one, a little longer, so that the batch needs padding to the longest text in it")  # fmt: skip


def input_names(tokenizer: Any) -> tuple[str, ...]:
    """The export's inputs, in TextLogits.forward's order."""
    return ("input_ids", "attention_mask") + (
        ("token_type_ids",) if "token_type_ids" in tokenizer.model_input_names else ()
    )


class TextLogits(nn.Module):
    """The transformers model as a function of positional tensors -> (B, num_classes) logits (explicit
    arguments, not *args: torch.export matches dynamic shapes to the signature)."""

    def __init__(self, hf: nn.Module):
        super().__init__()
        self.hf = hf

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.hf(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).logits


def text_cases(located: Located, predictor: Any, n: int = 6) -> tuple[list[Inputs], str]:
    """Tokenized validation texts of the run (one per class, round-robin), else fixed sentences, at the
    bundle's max_length and at a short length (the sequence axis must be dynamic too)."""
    texts, what = list(SAMPLE_TEXTS), f"{len(SAMPLE_TEXTS)} sample sentences"
    if located.run is not None:
        try:
            rows = read_split(located.run, "val")
        except GraftError:  # no split.csv (or a damaged one): the fixed sentences
            rows = []
        by_class: dict[str, list[str]] = {}
        for row in rows:  # the first texts only, also for a pair task (as the sample sentences are)
            if isinstance(row, TextRow):
                by_class.setdefault(row.label, []).append(row.text)
        picked = [group[i] for i in range(n) for group in by_class.values() if i < len(group)][:n]
        if len(picked) >= 2:
            texts, what = picked, f"{len(picked)} validation texts"
    names = input_names(predictor.tokenizer)
    cases = []
    for max_length in (predictor.max_length, min(predictor.max_length, SEQUENCE_AXIS_CHECK)):
        batch = predictor.tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                                    return_tensors="pt")  # fmt: skip
        cases.append(tuple(batch[name] for name in names))
    return cases, f"{what} at 2 sequence lengths"


def text_header(predictor: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """The sidecar's input and preprocessing entries for a text model."""
    tokenizer = predictor.tokenizer
    return {
        "input": {
            "names": list(input_names(tokenizer)),
            "shape": ["batch", "sequence"],
            "dtype": "int64",
            "layout": "token ids from the tokenizer beside this file, padded to the longest in the batch",
        },
        "tokenizer": {
            "file": "tokenizer.json",
            "pad_token": tokenizer.pad_token,
            "pad_id": tokenizer.pad_token_id,
            "max_length": predictor.max_length,
            "truncation": "longest_first",
        },
        "preprocessing": dict(meta.get("preprocessing", {})),
        "preprocessing_steps": [
            "tokenizers.Tokenizer.from_file('tokenizer.json') (or transformers.AutoTokenizer.from_pretrained"
            " on this folder)",
            f"truncate to {predictor.max_length} tokens, pad to the longest text in the batch with "
            f"{tokenizer.pad_token!r} (id {tokenizer.pad_token_id})",
            f"feed {', '.join(input_names(tokenizer))} as int64 (batch, sequence) arrays",
        ],
    }


def keep_tokenizer_beside(predictor: Any, folder: Path, bundle: Path) -> None:
    """An export outside the bundle gets the tokenizer files next to it (inside, they are already there)."""
    if folder.resolve() != bundle.resolve():
        predictor.tokenizer.save_pretrained(str(folder))
