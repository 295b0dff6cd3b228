"""The configuration tree: every section, its fields, defaults and validation (pydantic). How a tree is
built from defaults, a YAML file, flags and --set is graft/config/resolve.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator, model_validator

from graft.config.task_names import task_name


class _Section(BaseModel):
    # extra="forbid" turns a typo in YAML or --set into an error instead of a silently ignored key.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AugmentConfig(_Section):
    """Train-time augmentation (timm `create_transform(is_training=True)`); validation is never augmented."""

    enabled: bool = True
    # timm's default crop scale (0.08, 1) is for ImageNet from scratch; fine-tuning on a few hundred images
    # keeps more of each image so the object stays in view.
    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = Field(0.5, ge=0, le=1)
    vflip: float = Field(0.0, ge=0, le=1)
    color_jitter: float = Field(0.0, ge=0)
    auto_augment: str | None = None  # e.g. "rand-m9-mstd0.5" (timm RandAugment spec)
    random_erasing: float = Field(0.0, ge=0, le=1)


class DataConfig(_Section):
    path: Path | None = None  # folder of class sub-folders (optionally train/ val/ inside) or a CSV
    val: Path | None = None  # explicit validation folder/CSV; otherwise val/ inside path, else val_split
    val_split: float = Field(0.2, gt=0, lt=1)
    img_size: int | None = Field(None, ge=16)  # None: the model's pretrained input size
    num_workers: int | None = Field(None, ge=0)  # None: chosen from the CPU count
    cache_dir: Path | None = None  # frozen features, tokens, in-memory datasets; None: data/cache_dir.py
    augment: AugmentConfig = AugmentConfig()
    # What the samples are. auto: text when DATA is a text table (data/text_tables.py), else images.
    modality: Literal["auto", "image", "text"] = "auto"
    # What is predicted (graft/tasks/): one class per sample, any set of classes, or a number. auto: from the
    # labels (data/label_kind.py): ';'-separated labels are multi-label, a 'target' column or many distinct
    # numbers regression, anything else single-label; the task chosen is written here.
    task: Literal["auto", "single-label", "multi-label", "regression"] = "auto"
    label_separator: str = Field(";", min_length=1)  # how a multi-label cell joins its labels
    # Multi-label data as one 0/1 column per label: the columns' names, or patterns like "emo_*".
    label_columns: list[str] | None = None
    text_column: str = "text"
    # The label column of an image CSV or a text table; when the table has no 'label' column, 'labels'
    # (multi-label) or 'target' (regression) is taken instead.
    label_column: str = "label"
    path_column: str = "path"  # the image path column of an image CSV (split.csv keeps path,label)
    text_pair_column: str | None = None  # a second text per sample (sentence-pair tasks)
    # Tokens per text; longer texts are truncated (and counted). auto: long enough for 95% of the training
    # texts (a multiple of 32), at most the model's limit and AUTO_MAX_LENGTH (data/tokens.py); the length
    # chosen is written here.
    max_length: Annotated[int, Field(ge=8, le=8192)] | Literal["auto"] = "auto"
    # Training batches of texts of similar length (shuffled still; measured 2.82x the throughput of padding
    # to max_length, docs/benchmarks.md); validation always runs sorted by length.
    bucket_by_length: bool = True
    pad_to_max_length: bool = False  # pad every batch to max_length (static shapes; slower, see benchmarks)
    # Class imbalance: auto picks from the measured imbalance (data/check.py `choose_balance`); sampler draws
    # classes equally often (seeded per epoch, resumable); loss weights cross-entropy by 1/class size.
    balance: Literal["auto", "none", "sampler", "loss"] = "auto"
    strict: bool = False  # unreadable files are an error instead of skipped (and listed)
    dedupe: bool = False  # drop validation samples that duplicate training samples (exact or near)

    @model_validator(mode="before")
    @classmethod
    def _older_spellings(cls, values: Any) -> Any:
        """Configs written before tasks existed: data.task was the modality, data.labels: single the task."""
        if isinstance(values, dict):
            values = dict(values)
            if values.get("task") in ("image", "text"):
                values.setdefault("modality", values.pop("task"))
            if values.pop("labels", None) == "single":
                values.setdefault("task", "single-label")
        return values

    @field_validator("task", mode="before")
    @classmethod
    def _task_name(cls, value: Any) -> Any:
        return value if not isinstance(value, str) or value == "auto" else task_name(value)

    @field_validator("label_columns", mode="before")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [c.strip() for c in value.split(",") if c.strip()] or None
        return value


class StrategyConfig(_Section):
    """What trains when: see `graft advise` and README "Choosing a strategy"."""

    name: Literal["auto", "linear-probe", "full", "discriminative", "gradual"] = "auto"
    # Solve the head on the frozen features first (strategies/probe.py) and start every strategy from it;
    # false: the head starts at zero and trains with the rest (pretrained weights only; random init never).
    probe: bool = True
    train_groups: int | None = Field(None, ge=1)  # full/discriminative: only the top N backbone groups train
    layer_decay: float = Field(0.6, gt=0, le=1)  # LR factor per layer group, from the head toward the input
    unfreeze_every: int = Field(1, ge=1)  # gradual: epochs between unfreezes
    unfreeze_at: list[int] | None = (
        None  # gradual: explicit epochs (0-based) at which the next groups unfreeze
    )
    unfreeze_groups: int | None = Field(
        None, ge=1
    )  # gradual: groups per unfreeze; None: all train by the last
    train_bn: bool = False  # every BatchNorm layer in train mode from the start (frozen weights stay frozen)
    cache_features: Literal["auto", "on", "off"] = (
        "auto"  # auto: gradual's head stage, and frozen parts when augment is off; on: always
    )
    cache_max_gb: float = Field(4.0, ge=0)  # activations kept for gradual's stages: the largest are skipped

    @field_validator("unfreeze_at", mode="before")
    @classmethod
    def _comma_ints(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(v) for v in value.split(",") if v.strip()]
        return [value] if isinstance(value, int) else value


class ModelConfig(_Section):
    # timm name, tv:NAME, a Hugging Face encoder (hub name or folder), or a bundle/run directory.
    # None: efficientnet_lite0 for images, minilm (offline MiniLM-L6) for text.
    name: str | None = None
    pretrained: bool = True
    weights: Path | None = None  # a local .safetensors/.pt/.pth state_dict for `name`'s architecture
    drop_rate: float | None = Field(None, ge=0, lt=1)  # None keeps the model's default
    # "pkg.mod:ClassName" of the nn.Module object graft.train was given (models/module_input.py): its weights
    # were the starting weights, and `name` is what it resolved to (timm architecture, tv:NAME, a transformers
    # folder, or module:pkg.mod:ClassName for a custom module). Set by graft.train, never by hand.
    module: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.<>]*$")

    @model_validator(mode="after")
    def _object_alone(self) -> ModelConfig:
        """A model object brings its own weights and dropout; a module: name only comes with its object."""
        custom = (self.name or "").startswith("module:")
        if self.module is None and custom:
            raise ValueError(f"{self.name!r} is written by graft.train for an nn.Module object; "
                             "pass the object as model=")  # fmt: skip
        if self.module is None:
            return self
        if custom and self.name != f"module:{self.module}":
            raise ValueError(f"name {self.name!r} and module {self.module!r} disagree")
        if self.weights is not None:
            raise ValueError(
                "a model object brings its own weights: give model=OBJECT or weights=FILE, not both"
            )
        if not self.pretrained:
            raise ValueError(
                "a model object starts from its own weights (pretrained=False does not apply); "
                "set strategy.probe=false to train the head with the rest instead of solving it"
            )
        if self.drop_rate is not None:
            raise ValueError("a model object keeps its own dropout: set it on the module, not drop_rate")
        return self


class OptimConfig(_Section):
    # Any timm optimizer (`timm.optim.list_optimizers()`: adamw, lamb, lion, ...), checked when the
    # optimizer is built (training/optim.py). sgd: plain SGD with momentum (timm's "momentum"); timm's own
    # "sgd" is Nesterov, here "nesterov".
    name: str = "adamw"
    lr: PositiveFloat | Literal["auto"] = 1e-3  # auto: the LR range test's suggestion (graft lr-find)
    weight_decay: float = Field(0.01, ge=0)  # not applied to biases and norm layers
    momentum: float = Field(0.9, ge=0, lt=1)  # optimizers with momentum (sgd, nesterov, rmsprop, ...)
    # graft's schedule is a pure factor of the optimizer step (exact resume, groups joining at an unfreeze):
    # linear warmup, then cosine to min_lr_ratio or constant. timm's other schedulers are not offered.
    scheduler: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = Field(0.5, ge=0)
    min_lr_ratio: float = Field(0.01, ge=0, le=1)  # cosine floor, as a fraction of lr
    clip_grad_norm: float | None = Field(1.0, gt=0)
    # 0: the solved head and temperature scaling already give calibrated probabilities, and smoothing
    # pulls the fine-tune away from the probe it starts from (measured on the photo sets: no better at the
    # best epoch, 1.1 points worse at the last).
    label_smoothing: float = Field(0.0, ge=0, lt=1)

    @field_validator("name", mode="before")
    @classmethod
    def _optimizer_name(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("scheduler", mode="before")
    @classmethod
    def _schedule_name(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() not in SCHEDULES:
            raise ValueError(
                f"must be {' or '.join(SCHEDULES)}: graft's LR schedule is warmup then a factor per step, so "
                "a run resumes exactly; timm's other schedulers are not supported"
            )
        return value.strip().lower() if isinstance(value, str) else value


SCHEDULES = ("cosine", "constant")


def parse_duration(value: Any) -> Any:
    """'90s', '10m', '1h30m', '1.5h' or a number of seconds -> seconds; other values pass through."""
    if not isinstance(value, str) or value in ("auto", "none", "off"):
        return None if value in ("none", "off") else value
    text, total, number = value.strip().lower().replace(" ", ""), 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    for char in text:
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total, number = total + float(number) * units[char], ""
        else:
            raise ValueError(f"{value!r} is not a duration; write e.g. 90s, 10m, 1h30m, or auto or none")
    return total + (float(number) if number else 0.0)


class TrainConfig(_Section):
    # Fine-tuning epochs after the solved head; 0: the probe alone. With strategy auto: at most this many,
    # as many as fit in time_limit (the number chosen is written here).
    epochs: int = Field(10, ge=0)
    # Wall-clock budget of a run in seconds ("10m", "1h" accepted). auto: for strategy auto, 3x the time of
    # the frozen pass and the solved head (strategies/auto.py; the seconds chosen are written here); no limit otherwise.
    # Reached: the run stops at an epoch's end like early stopping and bundles its best model.
    time_limit: PositiveFloat | Literal["auto"] | None = "auto"
    batch_size: int = Field(32, ge=1)
    accum_steps: int = Field(1, ge=1)  # optimizer step every N batches: effective batch = batch_size * N
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"  # auto: bf16 where supported on CUDA, off on CPU
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms; slower, bitwise repeatable
    patience: int | None = Field(None, ge=1)  # early stopping: epochs without improvement before stopping
    min_delta: float = Field(0.0, ge=0)  # early stopping: the smallest change that counts as improvement
    skip_nonfinite: int = Field(0, ge=0)  # NaN/Inf losses tolerated (batch skipped) before the run stops
    # Regression's loss on the standardised targets (tasks/regression.py); classification: cross-entropy
    # (single-label) or binary cross-entropy per label (multi-label) always. Huber (delta: one standard
    # deviation) measured better than MSE on both shared regression sets (MAE: utkface_age 9.60 -> 9.56
    # years, imdb_rating 2.157 -> 2.086 stars; docs/benchmarks.md).
    regression_loss: Literal["mse", "huber"] = "huber"

    @field_validator("time_limit", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError("must be auto, cpu, cuda, cuda:N or mps")


class CheckpointConfig(_Section):
    # What "best" means. auto: the task's own (val_acc single-label, val_map multi-label, val_mae regression).
    monitor: Literal["auto", "val_loss", "val_acc", "val_map", "val_f1", "val_macro_f1", "val_subset_acc", "val_mae",
                     "val_rmse", "val_r2", "val_spearman"] = "auto"  # fmt: skip
    mode: Literal["auto", "max", "min"] = "auto"  # auto: min for a loss or an error, max for the rest
    keep_top_k: int = Field(1, ge=0)  # best epoch-end checkpoints kept; best and last are never deleted
    save_every_steps: int | None = Field(None, ge=1)  # mid-epoch checkpoints every N optimizer steps
    save_every_minutes: float | None = Field(None, gt=0)  # ... and/or every M minutes


class LogConfig(_Section):
    sinks: list[Literal["tensorboard", "csv", "wandb"]] = ["tensorboard", "csv"]  # "none": no files at all
    every_n_steps: int = Field(10, ge=1)  # train loss, LRs, throughput; each one costs a device sync
    histogram_every_n_steps: int = Field(50, ge=0)  # weight/gradient histograms per layer group; 0: off
    images: int = Field(
        16, ge=0
    )  # augmented samples at start, worst-misclassified val images per epoch; 0: off
    # The model graph in TensorBoard, traced once at the start: off by default (as Lightning's
    # TensorBoardLogger), since torch.jit's trace takes seconds on large models and few runs need it.
    graph: bool = False
    wandb_project: str = "graft"
    wandb_name: str | None = None  # default: the run folder's name
    quiet: bool = False  # no progress bars or step lines, the per-epoch lines only (graft/progress.py)

    @field_validator("sinks", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        return [] if value in (["none"], ["off"]) else value


class Config(_Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    strategy: StrategyConfig = StrategyConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    out: Path | None = None  # run directory; default runs/<data>-<model>-<time>


DEFAULT_MODELS = {"image": "efficientnet_lite0", "text": "minilm"}


def apply_task_defaults(cfg: Config, modality: str, task: str | None = None) -> None:
    """Fill what depends on the data (found by discovery): the default model for the modality, the task
    found in the labels, and the metric that picks the best epoch for it."""
    if cfg.model.name is None:
        cfg.model.name = DEFAULT_MODELS[modality]
    if task is not None:
        cfg.data.task = task
    if cfg.checkpoint.monitor == "auto" and cfg.data.task != "auto":
        cfg.checkpoint.monitor = TASK_MONITORS[cfg.data.task]


TASK_MONITORS = {"single-label": "val_acc", "multi-label": "val_map", "regression": "val_mae"}
