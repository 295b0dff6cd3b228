"""What gets logged, and when: the training loop's only view of monitoring.

The loop calls five methods at fixed points (`start`, `log_step`, `log_histograms`, `end_epoch`,
`finish`); this class turns them into records for every sink (logger.py's fan-out to sink.py's `Sink`s). Cadence is config, not code:
scalars every `log.every_n_steps`, histograms every `log.histogram_every_n_steps` (and at an epoch's
last step if none fell in it), images once at the start and once per epoch. Everything expensive is either rare (images: one grid per epoch, built from
a handful of decoded files) or computed on the device in milliseconds (histograms).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from graft.config import LogConfig
from graft.monitoring.logger import MetricLogger
from graft.monitoring.sink import Captioned
from graft.monitoring.visuals import group_histograms, to_image
from graft.progress import status
from graft.tasks import SingleLabel, Task


@dataclass
class EvalOutputs:
    """Per-sample validation results, in validation-set order (CPU tensors)."""

    losses: torch.Tensor
    preds: torch.Tensor
    targets: torch.Tensor
    confidence: torch.Tensor  # softmax probability of the predicted class
    logits: torch.Tensor | None = None  # (N, C): what calibration is fit on


class Monitor:
    def __init__(
        self,
        logger: MetricLogger,
        cfg: LogConfig,
        model: nn.Module,
        groups: Sequence,
        classes: list[str],
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        train_images: Dataset | None = None,
        val_images: Dataset | None = None,
        train_texts: Sequence | None = None,
        val_texts: Sequence | None = None,
        task: Task | None = None,
    ):
        self.logger, self.cfg, self.model, self.groups, self.classes = logger, cfg, model, groups, classes
        self.mean, self.std = mean, std
        self.task = task or SingleLabel()  # what a prediction and its truth look like in words
        self.train_images, self.val_images = train_images, val_images
        # Text tasks: the samples (TextSample), shown as text summaries where images would be.
        self.train_texts, self.val_texts = train_texts, val_texts
        self._clock, self._seen = time.perf_counter(), 0
        self._histograms_this_epoch = False
        self.notes: list[str] = []  # what the console should say about monitoring (a failed graph trace)

    # ------------------------------------------------------------------------------------------- start

    def start(self, config_yaml: str, strategy: str, example: torch.Tensor | None) -> None:
        """Once per run (not on resume): the config and strategy as text, a grid of augmented training
        samples, the model graph."""
        self.logger.text("Config/resolved", _code_block(config_yaml), 0)
        self.logger.text("Strategy/explanation", strategy, 0)
        if self.cfg.images and self.train_images is not None and len(self.train_images):
            n = min(self.cfg.images, len(self.train_images))
            # Read through the dataset with epoch 0's keys: the same augmentation the first epoch draws,
            # seeded per sample (data/sampler.py), so this leaves every RNG of the run untouched.
            items = []
            for i in _spread(len(self.train_images), n):
                x, label = self.train_images[(0, i)]
                items.append(
                    Captioned(to_image(x, self.mean, self.std), self.task.target_words(label, self.classes))
                )
            self.logger.images("Images/train_augmented", items, 0)
        if self.cfg.images and self.train_texts:
            shown = [
                self.train_texts[i]
                for i in _spread(len(self.train_texts), min(self.cfg.images, len(self.train_texts)))
            ]
            self.logger.text("Text/train_samples", _text_table(["label", "text"],
                             [(self._words(s.label), _show(s)) for s in shown]), 0)  # fmt: skip
        if self.cfg.graph and example is not None:
            # add_graph traces in eval mode and then calls model.train(), which would switch the frozen
            # BatchNorm layers of a partly frozen model back to training: put every module back as it was.
            modes = {m: m.training for m in self.model.modules()}
            try:
                # torch.jit traces every op (and traces again to check): seconds on a large model, so
                # it says what it is doing (and is off unless --set log.graph=true).
                with torch.no_grad(), status("log    tracing the model graph for TensorBoard"):
                    self.logger.graph(self.model, example)
            except Exception as err:  # noqa: BLE001  tracing is best effort: some models do not trace
                self.notes.append(f"model graph not logged ({type(err).__name__}: {str(err)[:120]})")
            finally:
                for module, training in modes.items():
                    module.training = training
        self.logger.flush()

    # -------------------------------------------------------------------------------------------- steps

    def begin_epoch(self, seen: int) -> None:
        self._clock, self._seen = time.perf_counter(), seen
        self._histograms_this_epoch = False

    def step_due(self, step: int) -> bool:
        return step % self.cfg.every_n_steps == 0

    def log_step(self, step: int, loss: float, optimizer: torch.optim.Optimizer, seen: int) -> None:
        """Train loss, every param group's LR (decay and no-decay halves of a layer group share one), and
        throughput since the previous step record."""
        now = time.perf_counter()
        record: dict[str, float] = {"train_loss": loss}
        for group in optimizer.param_groups:
            record.setdefault(f"lr/{group.get('name', 'group').split('/')[0]}", group["lr"])
        if seen > self._seen:
            record["samples_per_s"] = (seen - self._seen) / max(now - self._clock, 1e-9)
        self._clock, self._seen = now, seen
        self.logger.log(record, step)

    def histograms_due(self, step: int, last_of_epoch: bool = False) -> bool:
        """Every `histogram_every_n_steps` steps (0: never), and at the last step of an epoch that had
        none: an epoch shorter than the period would otherwise show no histograms at all."""
        every = self.cfg.histogram_every_n_steps
        return bool(every) and (step % every == 0 or (last_of_epoch and not self._histograms_this_epoch))

    def log_histograms(self, step: int) -> None:
        """Weights and gradients of each layer group; call while the step's gradients still exist."""
        self.logger.histograms(group_histograms(self.model, self.groups), step)
        self._histograms_this_epoch = True

    # ------------------------------------------------------------------------------------------- epochs

    def end_epoch(self, record: dict[str, float], step: int, outputs: EvalOutputs | None) -> None:
        self.logger.log(record, step)
        if self.cfg.images and outputs is not None and self.val_images is not None:
            worst = self.worst_mistakes(outputs, self.cfg.images)
            if worst:
                self.logger.images("Images/val_worst_misclassified", worst, step)
        if self.cfg.images and outputs is not None and self.val_texts is not None:
            rows = [
                (*self._caption(outputs, i), _show(self.val_texts[i]))
                for i in self._worst(outputs, self.cfg.images)
            ]
            if rows:
                table = _text_table(["predicted", "p", "true", "text"], rows)
                self.logger.text("Text/val_worst_misclassified", table, step)

    def worst_mistakes(self, outputs: EvalOutputs, n: int) -> list[Captioned]:
        """The `n` misclassified validation images with the highest loss, captioned prediction / truth."""
        items = []
        for i in self._worst(outputs, n):
            x, _ = self.val_images[i]
            pred, score, true = self._caption(outputs, i)
            caption = f"pred {pred} ({score})\ntrue {true}"
            items.append(Captioned(to_image(x, self.mean, self.std), caption))
        return items

    def _words(self, label) -> str:
        return self.task.target_words(self.task.targets([label])[0], self.classes)

    def _caption(self, outputs: EvalOutputs, i: int) -> tuple[str, str, str]:
        return self.task.caption(outputs.preds[i], outputs.confidence[i], outputs.targets[i], self.classes)

    def _worst(self, outputs: EvalOutputs, n: int) -> list[int]:
        """Indices of the `n` mistakes (graft/tasks/ `Task.wrong`) with the highest loss, worst first."""
        wrong = self.task.wrong(outputs.preds, outputs.targets).nonzero().flatten()
        return wrong[outputs.losses[wrong].argsort(descending=True)][:n].tolist()

    # ----------------------------------------------------------------------------------------------- end

    def finish(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The run's hyperparameters against its results (TensorBoard's HPARAMS tab, W&B summary)."""
        self.logger.hparams(hparams, metrics)
        self.logger.flush()


def _show(sample, limit: int = 300) -> str:
    text = sample.text if sample.pair is None else f"{sample.text} ‖ {sample.pair}"
    text = " ".join(text.split())
    return (text[:limit] + "…") if len(text) > limit else text


def _text_table(header: list[str], rows: list[tuple]) -> str:
    """A markdown table (TensorBoard's text tab renders markdown)."""
    escape = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(escape(v) for v in row) + " |" for row in rows])


def _spread(size: int, n: int) -> list[int]:
    """n indices spread over the dataset (files are sorted by class: the first n would be one class)."""
    return sorted({round(i * (size - 1) / max(n - 1, 1)) for i in range(n)})


def _code_block(text: str) -> str:
    # TensorBoard renders text as markdown: indenting by four spaces keeps YAML's layout.
    return "\n".join("    " + line for line in text.splitlines())
