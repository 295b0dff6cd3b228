"""Layer groups: a model cut into blocks from the input to the head, the unit strategies freeze and tune.

The cut comes from the model, never from hard-coded names:
- timm models: their own `group_matcher(coarse=True)` (stem, one group per stage, ...), the same grouping
  timm uses for layer-wise LR decay;
- anything else (torchvision): the top-level children, expanding whichever child holds most of the
  weights (mobilenet's `features`, ViT's `encoder.layers`) until no single unit dominates.
The classification head (timm's `pretrained_cfg["classifier"]`, else the last Linear) is always its own,
last group.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from graft.models.vision import head_keys


@dataclass(frozen=True)
class LayerGroup:
    name: str
    param_names: tuple[str, ...]

    @property
    def is_head(self) -> bool:
        return self.name == "head"


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """The model's trainable parameters in input-to-output groups; the last group is the head."""
    head = {k for k in head_keys(model) if k.endswith(("weight", "bias"))}
    names = [n for n, _ in model.named_parameters()]
    head_params = tuple(n for n in names if n in head)
    if hasattr(model, "group_matcher"):
        from timm.models._manipulate import group_parameters

        units = [tuple(v) for v in group_parameters(model, model.group_matcher(coarse=True)).values()]
    else:
        units = _units_by_size(model)
    groups = []
    for unit in units:
        body = tuple(n for n in unit if n not in head)
        if body:
            groups.append(LayerGroup(_group_name(body, names), body))
    grouped = {n for g in groups for n in g.param_names} | set(head_params)
    assert grouped == set(names), f"parameters in no group: {sorted(set(names) - grouped)[:5]}"
    return [*groups, LayerGroup("head", head_params)]


def _units_by_size(model: nn.Module) -> list[tuple[str, ...]]:
    """Top-level children; a unit holding over half the weights is replaced by its children, repeatedly.

    A module's own direct parameters (torchvision ViT's `class_token`, `encoder.pos_embedding`) form a unit
    of their own, so expanding a module never loses any.
    """
    sizes = {n: p.numel() for n, p in model.named_parameters()}

    def split(prefix: str, module: nn.Module) -> list[tuple[nn.Module | None, str, tuple[str, ...]]]:
        direct = tuple(f"{prefix}{n}" for n, _ in module.named_parameters(recurse=False))
        parts = [(None, prefix, direct)] if direct else []  # None: not expandable further
        for name, child in module.named_children():
            names = tuple(f"{prefix}{name}.{n}" for n, _ in child.named_parameters())
            if names:
                parts.append((child, f"{prefix}{name}.", names))
        return parts

    units = split("", model)
    total = sum(sizes.values())
    while True:
        weights = [sum(sizes[n] for n in names) for _, _, names in units]
        i = max(range(len(units)), key=weights.__getitem__)
        module, prefix, _ = units[i]
        parts = split(prefix, module) if module is not None and weights[i] > total / 2 else []
        if len(parts) < 2:
            return [names for _, _, names in units]
        units[i : i + 1] = parts


def _group_name(param_names: tuple[str, ...], all_names: list[str]) -> str:
    """'blocks.3' for params sharing that module prefix; else the top-level modules joined, each whole if the
    group holds all of it, else by index: 'blocks.6+conv_head+bn2', 'conv1+bn1'."""
    paths = [n.split(".")[:-1] for n in param_names]
    common = []
    for parts in zip(*paths):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    if common:
        return ".".join(common)
    mine = set(param_names)
    names = []
    for path, name in zip(paths, param_names):
        top = path[0] if path else name
        whole = all(n in mine for n in all_names if n.startswith(f"{top}."))
        names.append(top if whole or len(path) < 2 else f"{top}.{path[1]}")
    return "+".join(dict.fromkeys(names))
