"""Weights & Biases (`--log wandb`, the `wandb` extra). Works with no network: `WANDB_MODE=offline` writes
runs/NAME/wandb/offline-run-*/, which `wandb sync` uploads later. Without an API key graft logs offline
rather than stopping to ask for one."""

from __future__ import annotations

import netrc
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graft.config import LogConfig
from graft.errors import GraftError
from graft.monitoring.sink import Captioned, Histogram, Sink, scalar_tags
from graft.runs.folder import WANDB_RUN_ID, RunFolder


class WandbSink(Sink):
    def __init__(self, run_dir: Path, cfg: LogConfig, config: dict, resumed: bool = False):
        try:
            import wandb
        except ImportError:
            raise GraftError(
                "--log wandb needs the wandb package: pip install 'torchgraft[wandb]' (or drop wandb from --log)"
            ) from None
        self.wandb = wandb
        folder = RunFolder(run_dir).wandb
        self.where = str(folder)
        folder.mkdir(parents=True, exist_ok=True)
        id_file = folder / WANDB_RUN_ID  # a resumed graft run continues the same W&B run
        run_id = id_file.read_text().strip() if resumed and id_file.is_file() else uuid.uuid4().hex[:8]
        id_file.write_text(run_id)
        mode = os.environ.get("WANDB_MODE") or ("online" if _has_api_key() else "offline")
        self.note = f"W&B {mode} run {run_id}" + (
            f" (no API key: `wandb sync {folder}` uploads it later)" if mode == "offline" else ""
        )
        self.run = wandb.init(
            project=cfg.wandb_project,
            name=cfg.wandb_name or run_dir.name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=config,
            mode=mode,
            settings=wandb.Settings(console="off", silent=True),  # graft prints its own line about the run
        )

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(scalar_tags(metrics), step=step)

    def histograms(self, histograms: dict[str, Histogram], step: int) -> None:
        self.run.log(
            {tag: self.wandb.Histogram(np_histogram=(h.counts, h.edges)) for tag, h in histograms.items()},
            step=step,
        )

    def images(self, tag: str, items: list[Captioned], step: int) -> None:
        self.run.log({tag: [self.wandb.Image(item.image, caption=item.caption) for item in items]}, step=step)

    def text(self, tag: str, markdown: str, step: int) -> None:
        self.run.summary[tag] = markdown  # shown on the run's overview page

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        self.run.summary.update(metrics)  # the config is already the run's hyperparameters

    def close(self) -> None:
        self.run.finish()


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False
