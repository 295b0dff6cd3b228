"""Builders for image backbones: timm models and torchvision models, each with a fresh head.

Every builder returns a `BuiltModel`: the module plus the preprocessing it expects, expressed as a timm
data config, so data loading, bundles and predict treat both families the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import timm
import torch
from timm.data import resolve_data_config
from torch import nn

from graft.errors import GraftError, did_you_mean

# module: a custom nn.Module object given to graft.train (models/module_input.py)
Family = Literal["timm", "torchvision", "transformers", "module"]
PREPROCESSING_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


@dataclass
class BuiltModel:
    model: nn.Module
    family: Family
    arch: str  # timm architecture or torchvision model name; rebuilds the module without graft
    data_config: dict[str, Any]  # input_size, interpolation, mean, std, crop_pct, crop_mode
    weights: str  # where the starting weights came from, in words

    @property
    def pretrained(self) -> bool:
        return self.weights != "random init"


def build_timm(
    name: str,
    num_classes: int,
    pretrained: bool,
    drop_rate: float | None = None,
    img_size: int | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
    weights: str | None = None,
    arch: str | None = None,
) -> BuiltModel:
    """timm model with a `num_classes` head; `name` may be 'arch', 'arch.tag', 'hf-hub:...' or 'local-dir:...'.

    `state_dict` (any key naming, see `adapt_state_dict`) replaces hub weights; `weights` describes it.
    `arch` is the architecture behind `name` when the name does not say it (local-dir: its config.json).
    """
    kwargs: dict[str, Any] = {}
    if drop_rate is not None:
        kwargs["drop_rate"] = drop_rate
    arch = arch or (None if ":" in name else name.split(".")[0])
    default_cfg = timm.get_pretrained_cfg(arch) if arch else None
    if img_size is not None and default_cfg is not None and default_cfg.fixed_input_size:
        # Fixed-size models (ViT) need the size at build time to resample position embeddings.
        kwargs["img_size"] = img_size
    try:
        if state_dict is not None:
            model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
            model.load_state_dict(adapt_state_dict(state_dict, model, where=weights or name))
        else:
            model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)
            if pretrained and model.pretrained_cfg.get("num_classes") != num_classes:  # timm made a new head
                zero_head(model)
    except OSError as err:  # hub / URL / missing-file errors all derive from OSError
        raise GraftError(
            f"could not load pretrained weights for {name!r}: {str(err).splitlines()[0]} "
            "(offline? use a model with offline weights, see `graft models --offline`, "
            "or --set model.pretrained=false)"
        ) from None
    data_config = resolve_data_config(
        {"input_size": (3, img_size, img_size)} if img_size else {}, model=model
    )
    return BuiltModel(
        model=model,
        family="timm",
        arch=model.pretrained_cfg.get("architecture") or arch or name,
        data_config={k: data_config[k] for k in PREPROCESSING_KEYS},
        weights=weights or _describe_timm_weights(model, pretrained),
    )


def build_torchvision(
    name: str,
    num_classes: int,
    pretrained: bool,
    img_size: int | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
    weights: str | None = None,
) -> BuiltModel:
    """torchvision classification model whose last Linear is replaced by a `num_classes` one.

    Replacing the layer in place keeps torchvision's parameter names, so the fine-tuned weights load
    into `torchvision.models.get_model(name, num_classes=N)` with no graft code.
    """
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise GraftError(f"unknown torchvision model {name!r}{did_you_mean(name, available)}")
    preset = torchvision.models.get_model_weights(name).DEFAULT  # None for models without weights
    tv_weights = preset if pretrained and state_dict is None else None
    # googlenet/inception_v3 built without weights keep auxiliary heads that return tuples in train mode.
    kwargs = {"aux_logits": False} if name in ("googlenet", "inception_v3") else {}
    try:
        model = torchvision.models.get_model(name, weights=tv_weights, **kwargs)
    except OSError as err:
        raise GraftError(
            f"could not download torchvision weights for {name!r}: {err} "
            "(offline? put the .pth in torch's hub cache, or --set model.pretrained=false)"
        ) from None
    replace_last_linear(model, num_classes)
    if tv_weights is not None:
        zero_head(model)
    if state_dict is not None:
        model.load_state_dict(adapt_state_dict(state_dict, model, where=weights or name))
    # The preset's preprocessing is what the architecture is meant to see, with or without its weights.
    data_config = torchvision_data_config(preset, img_size)
    description = weights or (f"torchvision {tv_weights}" if tv_weights else "random init")
    return BuiltModel(model, "torchvision", name, data_config, description)


def load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from .safetensors, or from a .pt/.pth loaded without executing pickled code."""
    if not path.is_file():
        raise GraftError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:  # truncated, or another format under this name
            raise GraftError(f"{path} is not a readable safetensors file ({_first_line(err)})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle raises many types; all mean "not a plain state_dict"
        raise GraftError(
            f"{path} is not a plain weights file: refused to unpickle it, nothing in it was run ({_first_line(err)})"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):  # common checkpoint wrappers, graft's included
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise GraftError(f"{path} does not hold a state_dict (a mapping of parameter names to tensors)")
    return obj


def _first_line(err: BaseException) -> str:
    """The line of a library's message that says what was found: torch's unpickling errors run to a dozen
    lines of advice, and the one naming the refused object says "GLOBAL"."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    found = next((line for line in lines if "GLOBAL" in line), lines[0] if lines else "")
    return found.removeprefix("WeightsUnpickler error: ").split(". Please use")[0][:200] or type(err).__name__


def adapt_state_dict(
    source: dict[str, torch.Tensor], model: nn.Module, where: str
) -> dict[str, torch.Tensor]:
    """Fit `source` onto `model`'s keys: by name where they match, else one-to-one in order (ported weights).

    Head tensors that are missing (a headless `num_classes=0` export) or shaped for another class count
    start at zero (see `zero_head`); every other tensor must be there with the right shape.
    """
    target = model.state_dict()
    head = head_keys(model)
    if not set(target) - head <= set(source):  # names differ: map by position, with or without the head
        body = [k for k in target if k not in head]
        if len(source) == len(target):
            source = dict(zip(target, source.values()))
        elif len(source) == len(body):
            source = dict(zip(body, source.values()))
        else:
            raise GraftError(
                f"{where}: {len(source)} tensors do not match the model's {len(target)}; "
                "is it for this architecture?"
            )
    adapted = {}
    for key, fresh in target.items():
        given = source.get(key)
        if given is not None and given.shape == fresh.shape:
            adapted[key] = given
        elif key in head:
            adapted[key] = torch.zeros_like(fresh)
        else:
            found = "missing" if given is None else f"shaped {tuple(given.shape)}"
            raise GraftError(f"{where}: tensor {key} is {found}; the model needs {tuple(fresh.shape)}")
    return adapted


def zero_head(model: nn.Module) -> None:
    """Zero the classification head. A new head on a pretrained backbone starts at zero (as in BiT, Kolesnikov
    et al. 2020): the first logits are all equal, the loss starts at ln(classes), and no large random logits
    push their gradients into the pretrained layers. Measured on the demo task, the first epoch went from
    47% to 82% validation accuracy."""
    state = model.state_dict()
    with torch.no_grad():
        for key in head_keys(model):
            if key in state:
                state[key].zero_()


def head_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the classification head (weight and bias of each head Linear)."""
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or last_linear_name(model)
    names = (names,) if isinstance(names, str) else names  # distilled models: ("head", "head_dist")
    return {f"{name}.{suffix}" for name in names for suffix in ("weight", "bias")}


def last_linear_name(model: nn.Module) -> str:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise GraftError(f"{type(model).__name__} has no Linear layer to use as the classification head")
    return names[-1]


def replace_last_linear(model: nn.Module, num_classes: int) -> None:
    name = last_linear_name(model)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    setattr(parent, attr, nn.Linear(old.in_features, num_classes))


def torchvision_data_config(preset_weights: Any, img_size: int | None) -> dict[str, Any]:
    """torchvision's ImageClassification preset, translated to timm's data-config vocabulary."""
    preset = preset_weights.transforms() if preset_weights is not None else None
    crop = img_size or (preset.crop_size[0] if preset else 224)
    resize = preset.resize_size[0] if preset else 256
    return {
        "input_size": (3, crop, crop),
        "interpolation": preset.interpolation.value if preset else "bilinear",
        "mean": tuple(preset.mean) if preset else (0.485, 0.456, 0.406),
        "std": tuple(preset.std) if preset else (0.229, 0.224, 0.225),
        "crop_pct": (preset.crop_size[0] / resize) if preset else 0.875,
        "crop_mode": "center",
    }


def _describe_timm_weights(model: nn.Module, pretrained: bool) -> str:
    if not pretrained:
        return "random init"
    cfg = model.pretrained_cfg
    return f"timm {cfg.get('hf_hub_id') or cfg.get('architecture')}" + (
        f" ({cfg['tag']})" if cfg.get("tag") else ""
    )
