"""`graft advise`, `graft summary`, `graft lr-find`: choosing what to train, and how fast."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from graft.cli.options import (
    BATCH_SIZE,
    CONFIG,
    DATA,
    DEVICE,
    IMG_SIZE,
    MODEL,
    OPT,
    SEED,
    SET,
    STRATEGY,
    WEIGHT_DECAY,
    resolve,
)
from graft.config import resolve_config
from graft.data.discover import discover_config
from graft.errors import GraftError
from graft.files import json_ready
from graft.monitoring.console import make_console, plural
from graft.runs.folder import RunFolder, read_bundle_meta


def advise_command(
    data: Path = DATA,
    model: str | None = MODEL,
    img_size: int | None = IMG_SIZE,
    batch_size: int | None = BATCH_SIZE,
    config: Path | None = CONFIG,
    set_: list[str] = SET,
    seed: int | None = SEED,
    device: str | None = DEVICE,
    as_json: bool = typer.Option(False, "--json", help="Print the measurements and advice as JSON."),
) -> None:
    """Measure DATA against a pretrained model and recommend a strategy (what `--strategy auto` picks)."""
    cfg = resolve(
        config,
        set_,
        data=data,
        model=model,
        img_size=img_size,
        batch_size=batch_size,
        seed=seed,
        device=device,
    )
    spec = discover_config(cfg)
    from graft.strategies.advisor import UNITS
    from graft.training.prepare import advise_on_data

    advice, md = advise_on_data(cfg, spec)
    if as_json:
        print(
            json.dumps(json_ready({"data": str(data), "model": cfg.model.name, **advice.to_dict()}), indent=2)
        )
        return
    unit = UNITS[spec.modality]
    size = md.built.data_config.get("input_size")  # (C, H, W); text models have none
    model_at = f"{cfg.model.name} at {size[1]}x{size[2]}" if size else cfg.model.name
    console = make_console()
    rows = [
        ("data", f"{spec.description}: {plural(advice.num_classes, 'class')}, "
                 f"{plural(advice.train_images, 'training ' + unit.removesuffix('s'))}"),
        ("classes", f"median {plural(round(advice.median_per_class), unit.removesuffix('s'))} per class, smallest {advice.min_per_class}, "
                    f"largest/smallest {advice.imbalance:.1f}x"),
    ]  # fmt: skip
    if advice.knn_accuracy is not None:
        chance = 1 / advice.num_classes
        rows.append(("features", f"{model_at}: k-NN accuracy {advice.knn_accuracy:.1%} on {advice.sample_size} "
                                 f"sampled {unit} (chance {chance:.1%}), separability {advice.separability:.2f}"))  # fmt: skip
        if spec.modality == "image":  # the input shift is a BatchNorm statistic: text encoders have LayerNorm
            rows.append(("pixels", f"first-BatchNorm input shift {advice.input_shift:.2f} from the pretraining statistics"
                                   if advice.input_shift is not None else "no BatchNorm layer to compare statistics with"))  # fmt: skip
    rows += [
        ("advice", f"[bold]{advice.strategy}[/bold]: {advice.reason}"),
        ("next", f"graft train {data} --model {cfg.model.name} --strategy {advice.strategy}"),
    ]
    for key, value in rows:
        console.print(f"[bold]{key:<9}[/bold]{value}", highlight=False)


def summary_command(
    model_or_run: str = typer.Argument(
        ..., help="A model name (as for --model) or a run directory.", show_default=False
    ),
    strategy: str | None = STRATEGY,
    stage: int | None = typer.Option(
        None, "--stage", help="Stage to show (default: a run's last stage, else 0)."
    ),
    num_classes: int = typer.Option(
        10, "--num-classes", help="Head size for a model name (a run knows its own)."
    ),
    img_size: int | None = IMG_SIZE,
    epochs: int = typer.Option(
        10, "--epochs", help="Epochs to plan gradual unfreezing over, for a model name."
    ),
    depth: int = typer.Option(2, "--depth", help="Module nesting depth of the layer table."),
) -> None:
    """The layer table (torchinfo) and the layer groups: which train, at which LR, in a strategy's stage."""
    try:
        import torchinfo
    except ImportError:
        raise GraftError("graft summary needs torchinfo: pip install 'torchgraft[summary]'") from None
    from graft.models.registry import create_model
    from graft.strategies.groups import layer_groups
    from graft.strategies.stages import Staging, describe, stages_from_config
    from graft.training.optim import create_optimizer

    run = Path(model_or_run)
    if RunFolder(run).config.is_file():  # a run: its own model, classes, strategy and progress
        cfg = resolve_config(RunFolder(run).config, {"strategy": strategy} if strategy else {})
        num_classes = (
            len(read_bundle_meta(RunFolder(run).bundle)["classes"])
            if RunFolder(run).bundle_meta.is_file()
            else _classes_in_split(run)
        )
        stage = stage if stage is not None else _stage_reached(run)
    else:
        cfg = resolve_config(
            overrides={"model": model_or_run, "strategy": strategy or "full", "epochs": epochs}
        )
    if cfg.strategy.name == "auto":
        raise GraftError(
            "--strategy auto is decided from data by `graft advise DATA`; name a strategy to show"
        )
    built = create_model(
        cfg.model.name, num_classes, pretrained=False, img_size=img_size or cfg.data.img_size
    )
    groups = layer_groups(built.model)
    s = cfg.strategy
    # A run from pretrained weights solved its head first (the stages are shaped by it); a bare model name
    # is shown the same way, as `graft train` would run it.
    stages = stages_from_config(cfg, len(groups), head_solved=s.probe and cfg.model.pretrained)
    index = min(stage or 0, len(stages) - 1)
    Staging(
        built.model, groups=groups, stages=stages, make_optimizer=lambda g: create_optimizer(cfg.optim, g),
        base_lr=1.0, weight_decay=0.0, train_bn=s.train_bn,
    ).build(index)  # fmt: skip
    size = built.data_config["input_size"]
    stats = torchinfo.summary(
        built.model,
        input_size=(1, *size),
        depth=depth,
        verbose=0,
        col_names=("output_size", "num_params", "trainable"),
    )
    console = make_console()
    console.print(str(stats), highlight=False, markup=False)
    current = stages[index]
    params = dict(built.model.named_parameters())
    table = Table(
        "#",
        "layer group",
        "parameters",
        "trains",
        "LR x",
        title=f"stage {index} of {describe(s.name, stages, groups)}",
    )
    for i, group in enumerate(groups):
        count = sum(params[n].numel() for n in group.param_names)
        trains = i in current.trainable
        scale = f"{current.lr_scales[current.trainable.index(i)]:.3g}" if trains else "-"
        table.add_row(str(i), group.name, f"{count:,}", "[green]yes[/green]" if trains else "frozen", scale)
    console.print(table)
    trainable = sum(p.numel() for p in built.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in built.model.parameters())
    console.print(
        f"trainable {trainable:,} of {total:,} parameters ({trainable / total:.1%})", highlight=False
    )


def lr_find_command(
    data: Path = DATA,
    model: str | None = MODEL,
    strategy: str | None = STRATEGY,
    opt: str | None = OPT,
    weight_decay: float | None = WEIGHT_DECAY,
    img_size: int | None = IMG_SIZE,
    batch_size: int | None = BATCH_SIZE,
    config: Path | None = CONFIG,
    set_: list[str] = SET,
    seed: int | None = SEED,
    device: str | None = DEVICE,
    plot: Path = typer.Option(Path("lr_find.png"), "--plot", help="Where to save the loss-vs-LR plot."),
) -> None:
    """LR range test on a copy of the model, in the strategy's last stage; suggests --lr for graft train."""
    cfg = resolve(
        config, set_, data=data, model=model, strategy=strategy, opt=opt, weight_decay=weight_decay,
        img_size=img_size, batch_size=batch_size, seed=seed, device=device, lr="auto",
    )  # fmt: skip
    spec = discover_config(cfg)
    from graft.training.optim import check_optimizer_name
    from graft.training.prepare import prepare

    check_optimizer_name(cfg.optim.name)

    prepared = prepare(cfg, spec)
    result = prepared.lr_find
    result.plot(plot)
    console = make_console()
    console.print(
        f"strategy {prepared.cfg.strategy.name}, last stage ({plural(len(prepared.stages[-1].trainable), 'group')} "
        f"training); swept {result.lrs[0]:.0e} to {result.lrs[-1]:.1g} over {plural(len(result.lrs), 'step')}\n"
        f"suggested lr {result.suggestion:.2g} (where the loss falls fastest); "
        f"loss minimum / 10: {result.min_over_10:.2g}\n"
        f"plot    {plot}\n"
        f"next    graft train {data} --model {prepared.cfg.model.name} --strategy {prepared.cfg.strategy.name} "
        f"--lr {result.suggestion:.2g}" + (f" --opt {prepared.cfg.optim.name}" if opt else ""),
        highlight=False,
    )


def _classes_in_split(run: Path) -> int:
    from graft.runs.split import labels, read_split

    return len(labels(read_split(run)))


def _stage_reached(run: Path) -> int:
    from graft.runs.store import CheckpointStore

    checkpoint = CheckpointStore(RunFolder(run).checkpoints).latest_good()
    return checkpoint.state["progress"]["stage"] if checkpoint else 0
