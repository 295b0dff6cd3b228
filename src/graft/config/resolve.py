"""From defaults, a YAML file (`--config`), named flags / API keyword arguments and `--set` to one
validated `Config`, with errors that name the key and the valid keys; and the tree back to plain YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from graft.config.schema import Config
from graft.errors import GraftError, did_you_mean

# Short names used by CLI flags and `graft.train(**kwargs)`; every other key is spelled section.field.
ALIASES: dict[str, str] = {
    "data": "data.path",
    "val": "data.val",
    "val_split": "data.val_split",
    "img_size": "data.img_size",
    "task": "data.task",
    "modality": "data.modality",
    "label_separator": "data.label_separator",
    "label_columns": "data.label_columns",
    "regression_loss": "train.regression_loss",
    "text_column": "data.text_column",
    "label_column": "data.label_column",
    "path_column": "data.path_column",
    "text_pair_column": "data.text_pair_column",
    "max_length": "data.max_length",
    "num_workers": "data.num_workers",
    "balance": "data.balance",
    "strict": "data.strict",
    "dedupe": "data.dedupe",
    "skip_nonfinite": "train.skip_nonfinite",
    "model": "model.name",
    "pretrained": "model.pretrained",
    "weights": "model.weights",
    "strategy": "strategy.name",
    "layer_decay": "strategy.layer_decay",
    "unfreeze_every": "strategy.unfreeze_every",
    "unfreeze_at": "strategy.unfreeze_at",
    "train_bn": "strategy.train_bn",
    "cache_features": "strategy.cache_features",
    "lr": "optim.lr",
    # named as timm's train.py names them
    "opt": "optim.name",
    "sched": "optim.scheduler",
    "weight_decay": "optim.weight_decay",
    "warmup_epochs": "optim.warmup_epochs",
    "smoothing": "optim.label_smoothing",
    "epochs": "train.epochs",
    "time_limit": "train.time_limit",
    "train_groups": "strategy.train_groups",
    "batch_size": "train.batch_size",
    "accum_steps": "train.accum_steps",
    "amp": "train.amp",
    "device": "train.device",
    "seed": "train.seed",
    "quiet": "log.quiet",
    "log": "log.sinks",
    "monitor": "checkpoint.monitor",
    "mode": "checkpoint.mode",
    "keep_top_k": "checkpoint.keep_top_k",
    "save_every": "checkpoint.save_every_steps",
    "save_every_minutes": "checkpoint.save_every_minutes",
    "patience": "train.patience",
    "min_delta": "train.min_delta",
    "out": "out",
}


def valid_keys(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """Every settable dotted key, e.g. ['data.path', ..., 'optim.lr', ...]."""
    keys = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys += valid_keys(sub, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def parse_set(items: list[str]) -> dict[str, Any]:
    """['optim.lr=3e-4', 'log.sinks=csv'] -> {'optim.lr': '3e-4', ...}; values are parsed as YAML scalars."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise GraftError(f"--set expects key=value, got {item!r} (e.g. --set optim.lr=3e-4)")
        try:
            parsed[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as err:  # e.g. a !!python tag: safe_load refuses it (nothing is run)
            first = str(err).strip().splitlines()[0]
            raise GraftError(f"--set {key.strip()}: {value!r} is not a YAML value ({first})") from None
    return parsed


def resolve_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, base: Config | None = None
) -> Config:
    """Defaults (or `base`) <- YAML file at `path` <- `overrides` (aliases or dotted keys), validated once."""
    raw: dict[str, Any] = config_to_dict(base) if base is not None else {}
    if path is not None:
        raw = _merge(raw, _read_yaml(Path(path)))
    for key, value in (overrides or {}).items():
        _set_dotted(raw, ALIASES.get(key, key), value)
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise GraftError(_explain(err, source=str(path) if path else "config")) from None


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain JSON/YAML types only, so checkpoints can be read with torch.load(weights_only=True)."""
    return cfg.model_dump(mode="json")


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        merged[key] = (
            _merge(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


def lookup(cfg: Config, key: str) -> Any:
    """The value at a dotted key: lookup(cfg, "optim.lr")."""
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise GraftError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise GraftError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GraftError(f"{path} must hold a mapping of sections (data:, model:, optim:, ...)")
    return data


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, Mapping) and any(k.startswith(key + ".") for k in valid_keys()):
        for sub_key, sub_value in value.items():  # a section given as a dict: set each of its keys
            _set_dotted(raw, f"{key}.{sub_key}", sub_value)
        return
    if key not in valid_keys():
        hint = did_you_mean(key, valid_keys() + list(ALIASES))
        raise GraftError(f"unknown config key {key!r}{hint}; run `graft config` for every key")
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


def _section_at(prefix: str) -> type[BaseModel]:
    """The config model class at a dotted prefix: '' -> Config, 'data.augment' -> AugmentConfig."""
    section: type[BaseModel] = Config
    for part in filter(None, prefix.split(".")):
        section = section.model_fields[part].annotation
    return section


def _explain(err: ValidationError, source: str) -> str:
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            prefix = key.rpartition(".")[0]
            names = list(_section_at(prefix).model_fields)
            problems.append(
                f"unknown key {key!r}{did_you_mean(key.rpartition('.')[2], names)}; "
                f"valid keys{' in ' + prefix if prefix else ''}: {', '.join(names)}"
            )
        else:
            message = e["msg"].removeprefix("Value error, ")  # a validator's own words
            problems.append(f"{key}: {message} (got {e.get('input')!r})")
    return f"invalid {source}: " + "; ".join(problems)
