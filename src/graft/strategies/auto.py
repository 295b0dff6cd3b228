"""`--strategy auto`: after the solved head, fine-tune only where it can pay, within a time budget.

The probe (strategies/probe.py) gives every run a good model within about the time a hand-written
frozen-features recipe takes. What fine-tuning can add depends on the data, and what it costs depends on
this machine: so auto measures rather than guesses. Its inputs are the probe's validation accuracy, the
seconds one epoch takes when the top `k` backbone groups train (measured on a few real steps from each
group's cached cut, strategies/cuts.py), and the budget left (`--time-limit`; by default BUDGET_FACTOR x the time the
frozen pass and the solved head took, so a run ends within a small multiple of the frozen-features recipe).

The rule, as a pure function (`plan_fine_tuning`):
- a probe that makes no validation error has nothing to gain: stop there;
- otherwise train the deepest top-k groups (with the head, at LRs decaying toward the input) for which
  MIN_EPOCHS epochs fit in the budget, for as many epochs as fit, at most TARGET_EPOCHS (and --epochs).
  Deeper for fewer epochs beats shallower for more: measured from the solved head on the four photo sets
  (mean validation accuracy, probe 88.8%): the top 2 groups for 3 epochs 91.1%, for 5 epochs 91.3%, the
  top group alone for 5 epochs 90.5%, for 10 epochs 90.5%; the best epoch came at 2-5;
- if none fits MIN_EPOCHS, the top group alone for the epochs that fit: one epoch of the last encoder layer
  took MiniLM on IMDB reviews from the probe's 68.5% to 84.1% (its [CLS] features are weak, being a
  mean-pooling sentence model), and a short fine-tune that does not beat the probe is not bundled anyway;
- if not even one epoch of the top group fits, the probe is the result.
Whether fine-tuning paid is then judged on the validation split like any epoch: the probe is epoch 0,
and the bundle is the best epoch (training/state.py), so the run ends with the better of the two.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from graft.monitoring.console import format_seconds

TARGET_EPOCHS = 5
MIN_EPOCHS = 3
# time_limit auto: this many times what the frozen-features recipe costs here (the frozen pass over train
# and val and the solved head, as if the feature cache were cold). The hand recipe (frozen features +
# LogisticRegression) costs about that, so a default run ends within about 4x of it; graft's fixed costs
# (data check, bundle, report) are inside the multiple, not on top of it.
BUDGET_FACTOR = 3.0


@dataclass(frozen=True)
class Option:
    """One way to fine-tune: the top `groups` backbone groups (and the head) train."""

    groups: int
    seconds_per_epoch: float  # measured: training steps and validation from where its epochs start
    start: str  # where its epochs start, in words ("after blocks.5", "from the images")
    val_seconds: float = 0.0  # its validation pass alone: paid once more at the end (the best model's logits)


@dataclass
class Plan:
    groups: int  # backbone groups to train from the top; 0: the probe alone
    epochs: int
    reason: str
    budget_s: float  # seconds left for fine-tuning when the plan was made
    options: list[Option] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def plan_fine_tuning(options: list[Option], budget_s: float, probe_val_acc: float, max_epochs: int) -> Plan:
    """Which groups to fine-tune and for how many epochs; `options` ordered by `groups`, ascending."""
    options = sorted(options, key=lambda o: o.groups)
    budget_s = max(0.0, budget_s)
    if probe_val_acc >= 1.0:
        return Plan(0, 0, "the probe makes no validation error: nothing left for fine-tuning to gain",
                    budget_s, options)  # fmt: skip
    if max_epochs == 0 or not options:
        why = "--epochs 0" if max_epochs == 0 else "no part of this model can be fine-tuned from a cut"
        return Plan(0, 0, f"the probe alone ({why})", budget_s, options)
    fitting = [
        o for o in options if o.seconds_per_epoch * min(MIN_EPOCHS, max_epochs) + o.val_seconds <= budget_s
    ]
    if not fitting and options[0].seconds_per_epoch + options[0].val_seconds > budget_s:
        return Plan(0, 0, f"a {format_seconds(budget_s)} budget is too small to fine-tune: the top group "
                          f"takes {format_seconds(options[0].seconds_per_epoch)} per epoch "
                          f"(--time-limit to allow more)", budget_s, options)  # fmt: skip
    chosen = fitting[-1] if fitting else options[0]  # else: fewer than MIN_EPOCHS of the top group
    fit = math.floor((budget_s - chosen.val_seconds) / max(chosen.seconds_per_epoch, 1e-9))
    epochs = min(max_epochs, TARGET_EPOCHS, fit)
    deeper = next((o for o in options if o.groups > chosen.groups), None)
    why = (f"{deeper.groups} groups would take {format_seconds(deeper.seconds_per_epoch)} per epoch"
           if deeper else "no deeper option was measured")  # fmt: skip
    return Plan(
        chosen.groups,
        epochs,
        f"top {chosen.groups} group{'s' * (chosen.groups > 1)} {chosen.start} for {epochs} epoch{'s' * (epochs > 1)} "
        f"({format_seconds(chosen.seconds_per_epoch)} each) in a {format_seconds(budget_s)} budget; {why}",
        budget_s,
        options,
    )
