"""Never silently train the wrong task: labels that look multi-label ("red;right") or like numbers to
regress ("10.5", "11.5", ... or ages) are refused before anything is written, with the way to train them as
classes anyway (`--single-label`, or `data.labels: single` in a config).

graft trains one class per sample. Without this check a multi-label CSV trains one class per combination
of labels, and a numeric target column one class per value seen (0% on any value not in the training
set); `graft check` said ok to both.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from graft.errors import GraftError

SEPARATOR = ";"  # how multi-label cells join their labels (the convention of the shared data and peers)
MANY_NUMBERS = 20  # more distinct whole numbers than this (ages, prices) are a quantity, not classes
SHOWN = 3


def judge_labels(labels: Sequence[str], where: str) -> list[str]:
    """Raise when the labels (one per sample, train and val) say the task is not single-label
    classification; return warnings for the ambiguous case (a few whole numbers with gaps: a rating?)."""
    counts = Counter(labels)
    joined = [name for name in counts if _is_joined(name)]
    if joined:
        examples = ", ".join(repr(name) for name in sorted(joined)[:SHOWN])
        raise GraftError(
            f"labels in {where} look multi-label: {sum(counts[n] for n in joined)} of {len(labels)} samples have "
            f"'{SEPARATOR}'-separated labels ({examples}); graft trains one label per sample, so each combination "
            "would become a class. Multi-label training is not available yet; to train each combination as a "
            "class anyway: --single-label"
        )
    values = {name: _number(name) for name in counts}
    if len(values) < 2 or any(v is None for v in values.values()):
        return []
    numbers = sorted(values.values())
    shown = ", ".join(f"{v:g}" for v in numbers[:SHOWN])
    whole = all(v.is_integer() for v in numbers)
    if not whole or len(numbers) > MANY_NUMBERS:
        raise GraftError(
            f"labels in {where} look like a quantity to predict, not classes: {len(numbers)} distinct numbers "
            f"({shown}, ...); graft classifies, so each value would become a class of its own. Regression is not "
            "available yet; to classify the values anyway: --single-label"
        )
    if numbers != [
        numbers[0] + i for i in range(len(numbers))
    ]:  # 0..9 digits are classes; 1-4, 7-10 a scale?
        return [f"labels are the numbers {', '.join(f'{v:g}' for v in numbers)}: each is trained as an unordered "
                "class; a rating or a count may want regression, which is not available yet"]  # fmt: skip
    return []


def column_hint(found: Sequence[str], image_table: bool = False) -> str:
    """What a table's columns suggest when the label column is missing: '' or ' (...)' for the message."""
    lower = {name.strip().lower() for name in found}
    hints = []
    if "labels" in lower:
        hints.append("'labels' looks like a multi-label column, which graft does not train yet")
    if "target" in lower:
        hints.append("'target' looks like a regression target, which graft does not train yet")
    if "path" in lower and "text" not in lower and not image_table:
        hints.append("a 'path' column makes it an image table: pass the CSV itself (graft train DATA/train.csv "
                     "--val DATA/val.csv)")  # fmt: skip
    return f" ({'; '.join(hints)})" if hints else ""


def _is_joined(name: str) -> bool:
    parts = name.split(SEPARATOR)
    return len(parts) > 1 and all(part.strip() for part in parts)


def _number(name: str) -> float | None:
    try:
        value = float(name)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
