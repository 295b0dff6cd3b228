"""One validated configuration tree for a run.

Precedence, lowest first: defaults -> YAML file (`--config`) -> named CLI flags / API keyword arguments ->
`--set section.key=value`. The tree is validated once, here; the resolved result is written to
`runs/NAME/config.yaml` and into every checkpoint, so a run can always be explained and repeated.

    >>> cfg = resolve_config(overrides={"lr": 3e-4, "train.epochs": 2})
    >>> cfg.optim.lr, cfg.train.epochs
    (0.0003, 2)

The tree is graft/config/schema.py; resolution, YAML and the alias table are graft/config/resolve.py.
"""

from graft.config.resolve import (
    ALIASES,
    config_to_dict,
    lookup,
    parse_set,
    resolve_config,
    save_config,
    valid_keys,
)
from graft.config.schema import (
    DEFAULT_MODELS,
    SCHEDULES,
    AugmentConfig,
    CheckpointConfig,
    Config,
    DataConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    StrategyConfig,
    TrainConfig,
    apply_task_defaults,
    parse_duration,
)

__all__ = [
    "ALIASES", "DEFAULT_MODELS", "SCHEDULES", "AugmentConfig", "CheckpointConfig", "Config", "DataConfig",
    "LogConfig", "ModelConfig", "OptimConfig", "StrategyConfig", "TrainConfig", "apply_task_defaults",
    "config_to_dict", "lookup", "parse_duration", "parse_set", "resolve_config", "save_config", "valid_keys",
]  # fmt: skip
