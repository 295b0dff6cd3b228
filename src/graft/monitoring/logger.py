"""One call per kind of record, fanned out to every sink (CSV, TensorBoard, W&B).

`monitoring/monitor.py` decides what to log and when; this module only routes records. Scalars come in
two kinds: step records (train loss, per-group LRs, throughput every `log.every_n_steps` optimizer steps)
and epoch records (they carry an "epoch" key). `step` is always the optimizer step, so train and
validation curves share one axis in every tool.
"""

from __future__ import annotations

from pathlib import Path

from graft.config import LogConfig
from graft.monitoring.csv_sink import CSVSink
from graft.monitoring.sink import Sink
from graft.runs.folder import RunFolder


class MetricLogger:
    """The fan-out: each call goes to every sink, in order."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks

    def __getattr__(self, kind: str):
        if kind.startswith("_") or not hasattr(Sink, kind):
            raise AttributeError(kind)

        def fan_out(*args, **kwargs) -> None:
            for sink in self.sinks:
                try:
                    getattr(sink, kind)(*args, **kwargs)
                except (
                    OSError
                ) as err:  # name what could not be written (tensorboard's writer thread does not)
                    err.filename = err.filename or getattr(sink, "where", None)
                    raise

        return fan_out

    def close(self) -> None:
        """Close every sink, even when one fails (a full disk): the first failure is raised after all."""
        failure = None
        for sink in self.sinks:
            try:
                sink.close()
            except OSError as err:
                err.filename = err.filename or getattr(sink, "where", None)
                failure = failure or err
        if failure is not None:
            raise failure

    def has(self, sink_type: type) -> bool:
        return any(isinstance(s, sink_type) for s in self.sinks)


def create_logger(
    cfg: LogConfig, run_dir: Path, purge_step: int | None = None, config: dict | None = None
) -> MetricLogger:
    """The sinks named in `cfg.sinks`. `purge_step`: on resume, the step the checkpoint was taken after;
    TensorBoard hides what the dead process logged later. `config`: the resolved config, for W&B."""
    sinks: list[Sink] = []
    if "csv" in cfg.sinks:
        sinks.append(CSVSink(RunFolder(run_dir).metrics))
    if "tensorboard" in cfg.sinks:
        from graft.monitoring.tensorboard import TensorBoardSink

        sinks.append(TensorBoardSink(RunFolder(run_dir).tensorboard, purge_step))
    if "wandb" in cfg.sinks:
        from graft.monitoring.wandb_sink import WandbSink

        sinks.append(WandbSink(run_dir, cfg, config or {}, resumed=purge_step is not None))
    return MetricLogger(sinks)
