"""A model given as an object: `graft.train(data, model=module)` for an nn.Module the user already holds.

The object is resolved to what graft can rebuild without it, so that checkpoints, resume and the bundle
work as they do for a name wherever the architecture is known:

  timm          its pretrained_cfg's architecture (and tag), when that name rebuilds the same module
                (same submodules, settings and tensor shapes); the head is `reset_classifier(N)`, the
                preprocessing the model's own, the bundle timm's (`timm.create_model("local-dir:...")`)
  torchvision   the one `torchvision.models` builder whose model is the same: `tv:NAME`, the last Linear
                replaced, the bundle torchvision's state_dict
  transformers  a PreTrainedModel (an encoder or a sequence classifier): saved with `save_pretrained` into
                a temporary folder and built from there as a model folder is, with the tokenizer of the
                folder or hub name it was loaded from (`name_or_path`, which config.yaml names)
  anything else a custom module, `module:pkg.mod:ClassName`: the head is `reset_classifier(N)` if it has one
                (timm style), else its last nn.Linear replaced; ImageNet mean/std at the configured size
                unless it carries a timm pretrained_cfg; the layer groups from its module tree. Its
                checkpoints and bundle hold its state_dict (safetensors); resuming or loading it needs an
                object of that architecture again (`model=`, checked by tensor names and shapes): graft
                never imports a user's class by name, and never pickles or unpickles one.

In every case the object's own weights are the starting weights, and the object is never changed: graft
trains a `copy.deepcopy` of it, which *is* the training model (no second model is built from a name). A
transformers object is not copied at all: it is only read by `save_pretrained`, and the one copy trained
is loaded from that folder.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import timm
import torch
from timm.data import resolve_data_config
from torch import nn

from graft.errors import GraftError
from graft.models.vision import (
    PREPROCESSING_KEYS,
    BuiltModel,
    build_timm,
    build_torchvision,
    head_keys,
    last_linear_name,
    replace_last_linear,
    torchvision_data_config,
    zero_head,
)

Kind = Literal["timm", "torchvision", "transformers", "module"]
CUSTOM_PREFIX = "module:"  # config.yaml's model.name for a custom module: module:pkg.mod:ClassName

# Per-module settings that do not change what the model computes from given weights; anything else a
# module stores as a plain value (kernel sizes, dropout rates, drop-path rates, ...) must match the name's.
_NOT_ARCHITECTURE = frozenset({"training", "grad_checkpointing"})
_SETTING_TYPES = (bool, int, float, str, tuple, type(None))


@dataclass
class ModelObject:
    """An nn.Module given as `model=`, resolved: what config.yaml names it, and the module to train."""

    module: nn.Module  # graft's deepcopy, trained in place; transformers: the user's object, only read
    kind: Kind
    name: str  # config.yaml's model.name: an architecture, tv:NAME, a transformers folder, module:...
    class_path: str  # "pkg.mod:ClassName", config.yaml's model.module

    @property
    def weights(self) -> str:
        """Where the starting weights came from, in words (the run header, graft.json)."""
        return f"the {self.class_path} object given as model="


def class_path(obj: Any) -> str:
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def model_object(obj: Any, resolve: bool = True) -> ModelObject:
    """Resolve `obj` (see the module docstring); `resolve=False`: take it as a custom module whatever it
    is (resuming or loading a custom run: only its tensor names and shapes matter)."""
    if not isinstance(obj, nn.Module):
        hint = "; for a state_dict, save it and pass weights=FILE with its architecture's name"
        hint = hint if isinstance(obj, dict) else ""
        raise GraftError(
            f"model: got a {type(obj).__module__}.{type(obj).__qualname__}; graft.train takes a model name "
            f"(timm, tv:NAME, a Hugging Face encoder), a model or bundle folder, or an nn.Module object{hint}"
        )
    path = class_path(obj)
    if resolve and _is_transformers(obj):
        return ModelObject(obj, "transformers", _text_source(obj), path)
    try:
        module = copy.deepcopy(obj)
    except (TypeError, RuntimeError, copy.Error) as err:  # an attribute that cannot be copied: a lock, a file
        raise GraftError(
            f"model: the {path} object cannot be copied ({str(err).splitlines()[0][:150]}); graft trains a "
            "copy.deepcopy of it so that the object stays as it is"
        ) from None
    module = module.float()  # graft trains float32 weights (autocast does the rest); a no-op if they are
    if resolve:
        name = _timm_name(module)
        if name is not None:
            return ModelObject(module, "timm", name, path)
        name = _torchvision_name(module)
        if name is not None:
            return ModelObject(module, "torchvision", f"tv:{name}", path)
    return ModelObject(module, "module", f"{CUSTOM_PREFIX}{path}", path)


def build_from_object(given: ModelObject, num_classes: int, img_size: int | None) -> BuiltModel:
    """The object's copy with a fresh, zeroed `num_classes` head, and the preprocessing it expects."""
    module = given.module
    if given.kind == "timm":
        module.reset_classifier(num_classes)
        zero_head(module)
        data_config = resolve_data_config(
            {"input_size": (3, img_size, img_size)} if img_size else {}, model=module
        )
        data_config = {k: data_config[k] for k in PREPROCESSING_KEYS}
        return BuiltModel(module, "timm", module.pretrained_cfg["architecture"], data_config, given.weights)
    if given.kind == "torchvision":
        import torchvision

        arch = given.name.removeprefix("tv:")
        replace_last_linear(module, num_classes)
        zero_head(module)
        preset = torchvision.models.get_model_weights(arch).DEFAULT
        return BuiltModel(
            module, "torchvision", arch, torchvision_data_config(preset, img_size), given.weights
        )
    if given.kind == "transformers":
        raise GraftError(
            f"model: {given.class_path} is a transformers model, which trains on texts; this data is images"
        )
    set_head(module, num_classes, given.class_path)
    return BuiltModel(
        module, "module", given.class_path, _custom_data_config(module, img_size), given.weights
    )


def set_head(module: nn.Module, num_classes: int, what: str) -> None:
    """A custom module's fresh, zeroed head: its own `reset_classifier` (timm style), else its last Linear."""
    if hasattr(module, "reset_classifier"):
        module.reset_classifier(num_classes)
    else:
        try:
            last = last_linear_name(module)
        except GraftError:
            last = None
        if not last:  # none at all, or the module itself is one Linear: nothing in front of a head
            raise GraftError(
                f"model: {what} has no nn.Linear to use as the classification head; give a module whose last "
                "layer is an nn.Linear (its output size is replaced for the data's classes), or one with "
                "reset_classifier(num_classes)"
            )
        replace_last_linear(module, num_classes)
    zero_head(module)


def build_text_from_object(
    given: ModelObject, num_classes: int, classes: list[str], problem_type: str
) -> tuple[BuiltModel, Any]:
    """(model, tokenizer) from a transformers object: saved into a temporary folder, built from it as a
    model folder is (a new head for `classes`), the tokenizer read from where the object was loaded."""
    from graft.models.text_encoder import build_text, quiet_transformers, refuse_remote_code

    if given.kind != "transformers":
        raise GraftError(
            f"model: {given.class_path} is not a transformers model; a table of texts trains a Hugging Face "
            "encoder (a PreTrainedModel object, its folder or its name)"
        )
    quiet_transformers()
    if getattr(given.module.config, "auto_map", None):
        raise GraftError(
            f"model: {given.class_path}'s config maps to Python code of its own ('auto_map'), "
            "which graft never runs"
        )
    if Path(given.name).is_dir():
        refuse_remote_code(Path(given.name))
    with tempfile.TemporaryDirectory(prefix="graft-model-") as folder:
        given.module.save_pretrained(folder, safe_serialization=True)
        try:
            built, tokenizer = build_text(
                folder, num_classes, classes, problem_type=problem_type, tokenizer_from=given.name
            )
        # A PreTrainedModel subclass of an architecture transformers does not ship (no Auto class for it).
        except (ValueError, KeyError) as err:
            raise GraftError(
                f"model: transformers cannot build a sequence classifier from the saved {given.class_path} "
                f"({str(err).strip().splitlines()[0][:150]})"
            ) from None
    built.weights = given.weights
    return built, tokenizer


def resumed_object(
    obj: Any, name: str, module: str, state: dict[str, torch.Tensor], where: str
) -> ModelObject | None:
    """The object `graft.resume(run, model=obj)` was given, checked against the run (trained from a `module`
    object, resolved to `name`) and its checkpoint's tensors; None: the run's architecture by name."""
    custom = name.startswith(CUSTOM_PREFIX)
    if obj is None:
        if custom:
            raise object_needed(f"{where} was trained from", module, f"graft.resume({where!r}, model=...)")
        return None
    given = model_object(obj, resolve=not custom)
    if given.kind == "transformers":
        return given  # its tensors are named inside graft's TextClassifier: the checkpoint's load checks them
    if not custom and given.name != name:
        found = "a module no name rebuilds (its settings differ)" if given.kind == "module" else given.name
        raise GraftError(f"model: {where} trained {name}; the given {given.class_path} object is {found}: resume "
                         f"without model= (graft rebuilds {name} by its name, the weights are the checkpoint's)")  # fmt: skip
    check_fits(given.module, state, where, head_may_differ=True)
    return given


def load_object_bundle(bundle: Path, meta: dict[str, Any], obj: Any) -> BuiltModel:
    """A custom module's bundle: its weights (model.safetensors) in a copy of `obj`, checked by tensor names
    and shapes, and the preprocessing it was trained with."""
    module = meta.get("module") or meta.get("arch")
    if meta.get("family") != "module":
        raise GraftError(
            f"model=: {bundle} is a {meta.get('family')} bundle, which loads without it; drop model="
        )
    if obj is None:  # graft.evaluate and graft.export (and their commands) load the bundle through here too
        raise object_needed(f"{bundle} holds the weights of", module, f"graft.load({str(bundle)!r}, model=...)",
                            also=" (graft.evaluate and graft.export take the same model=)")  # fmt: skip
    from safetensors.torch import load_file

    given = model_object(obj, resolve=False)
    set_head(given.module, meta["num_classes"], given.class_path)
    state = load_file(str(bundle / "model.safetensors"))
    check_fits(given.module, state, str(bundle))
    given.module.load_state_dict(state)
    return BuiltModel(given.module, "module", module, dict(meta["preprocessing"]), f"bundle {bundle}")


def object_needed(what: str, module: str, call: str, also: str = "") -> GraftError:
    """The one-line refusal where a custom module's run or bundle is used without the object."""
    call = call.replace("...", f"{_short(module)}(...)")
    return GraftError(
        f"{what} a Python module ({module}), which only Python can build: {call} "
        f"with an object of that architecture{also}"
    )


def check_fits(
    module: nn.Module, state: dict[str, torch.Tensor], where: str, head_may_differ: bool = False
) -> None:
    """`state` (a checkpoint's, a bundle's) has exactly `module`'s tensor names and shapes, or one line
    naming the first difference. `head_may_differ`: the head is replaced before the weights are loaded,
    so only its input size must match."""
    mine = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    head = head_keys(module) if head_may_differ else set()
    fix = "give an object of the architecture it was trained with"
    for key in [k for k in mine if k not in state and k not in head]:  # the first in the module's order
        raise GraftError(f"{where}: the given module has tensor {key}, the saved weights do not; {fix}")
    for key in [k for k in state if k not in mine and k not in head]:
        raise GraftError(f"{where}: the saved weights have tensor {key}, the given module does not; {fix}")
    for key in [k for k in mine if k in state]:
        saved, shape = tuple(state[key].shape), mine[key]
        if saved != shape and not (key in head and saved[1:] == shape[1:]):
            raise GraftError(
                f"{where}: tensor {key} is {saved} in the saved weights, {shape} in the given module; {fix}"
            )


# ------------------------------------------------------------------------------------------------ resolving


def _timm_name(module: nn.Module) -> str | None:
    """`arch[.tag]` from the model's pretrained_cfg, if building that name gives this very module."""
    cfg = getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None)
    arch = cfg.get("architecture") if isinstance(cfg, dict) else None
    if not isinstance(arch, str) or not timm.is_model(arch):
        return None
    tag = cfg.get("tag")
    name = f"{arch}.{tag}" if tag and f"{arch}.{tag}" in timm.list_pretrained(f"{arch}.*") else arch
    try:
        with torch.device("meta"):  # no memory, no init cost: only the structure is compared
            candidate = build_timm(name, getattr(module, "num_classes", 1000), pretrained=False).model
    except Exception:  # noqa: BLE001 - a name timm cannot build without the object: a custom module
        return None
    same_preprocessing = all(
        resolve_data_config({}, model=module)[k] == resolve_data_config({}, model=candidate)[k]
        for k in PREPROCESSING_KEYS
    )  # fmt: skip
    return name if same_preprocessing and _structure(module) == _structure(candidate) else None


def _torchvision_name(module: nn.Module) -> str | None:
    """The one torchvision classification builder in the class's module whose model is this module, as
    graft builds it (build_torchvision); none or several: None."""
    family = type(module).__module__
    if not family.startswith("torchvision.models."):
        return None
    import torchvision

    try:
        outputs = module.get_submodule(last_linear_name(module)).out_features
    except (GraftError, AttributeError):
        return None
    names = [n for n in torchvision.models.list_models(module=torchvision.models)
             if torchvision.models.get_model_builder(n).__module__ == family]  # fmt: skip
    target, matches = _structure(module), []
    for name in names:
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # googlenet's "default weight initialization will change"
                candidate = build_torchvision(name, outputs, pretrained=False).model
        except Exception:  # noqa: BLE001 - a builder that needs arguments: not this one
            continue
        if _structure(candidate) == target:
            matches.append(name)
    return matches[0] if len(matches) == 1 else None


def _structure(module: nn.Module) -> tuple[list, list]:
    """What a name must rebuild: every tensor's name and shape, every submodule's type and settings."""
    tensors = [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
    modules = [
        (name, type(m).__qualname__, sorted((k, v) for k, v in vars(m).items()
                                            if not k.startswith("_") and k not in _NOT_ARCHITECTURE
                                            and isinstance(v, _SETTING_TYPES)))
        for name, m in module.named_modules()
    ]  # fmt: skip
    return tensors, modules


def _custom_data_config(module: nn.Module, img_size: int | None) -> dict[str, Any]:
    """A timm pretrained_cfg's preprocessing if the module carries one, else ImageNet's at `img_size`."""
    cfg = getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None)
    if isinstance(cfg, dict) and cfg.get("mean") and cfg.get("std"):
        resolved = resolve_data_config(
            {"input_size": (3, img_size, img_size)} if img_size else {}, model=module
        )
        return {k: resolved[k] for k in PREPROCESSING_KEYS}
    return torchvision_data_config(None, img_size)


def _short(module: str) -> str:
    return module.rpartition(":")[2].rpartition(".")[2]  # "pkg.mod:Outer.Net" -> "Net"


def _is_transformers(obj: nn.Module) -> bool:
    # By the class's ancestry, so that a plain module never imports transformers.
    return any(
        c.__module__.startswith("transformers.") and c.__name__ == "PreTrainedModel"
        for c in type(obj).__mro__
    )


def _text_source(obj: nn.Module) -> str:
    """Where a transformers object was loaded from: its tokenizer is read from there."""
    source = getattr(obj, "name_or_path", "") or ""
    if not source:
        raise GraftError(
            f"model: this {type(obj).__name__} does not say where it was loaded from (its name_or_path is "
            "empty), so graft has no tokenizer for it; save it and its tokenizer with "
            "save_pretrained(FOLDER) and pass model=FOLDER"
        )
    return str(source)
