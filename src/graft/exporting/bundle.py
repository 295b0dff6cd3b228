"""The bundle: `runs/NAME/model/`, a folder others can load without graft.

timm models are saved in timm's Hugging Face layout (`config.json` with num_classes, label_names and the
preprocessing in pretrained_cfg, plus `model.safetensors`) by timm's own `save_for_hf`, so:

    model = timm.create_model("local-dir:runs/NAME/model", pretrained=True)

torchvision models keep torchvision's parameter names in `model.safetensors`:

    model = torchvision.models.get_model(ARCH, num_classes=N)
    model.load_state_dict(safetensors.torch.load_file("runs/NAME/model/model.safetensors"))

A custom nn.Module given to `graft.train(model=obj)` (models/module_input.py) is saved the same way, its
state_dict with the head replaced for the classes; graft.json's `module` names its class, which graft
never imports. Build one of that architecture, put the same head on it, and load:

    graft.load("runs/NAME", model=Net())               # graft does the head and checks every tensor
    net.fc = nn.Linear(net.fc.in_features, N); net.load_state_dict(load_file(".../model.safetensors"))

Text models (Hugging Face encoders) are saved with `save_pretrained` (model and tokenizer):

    AutoModelForSequenceClassification.from_pretrained("runs/NAME/model")
    pipeline("text-classification", model="runs/NAME/model")

graft's own metadata (classes, preprocessing, metrics, calibration, the task, where the weights came from,
graft version) is `graft.json` beside them. What the logits mean depends on the task (`task_spec` there):

  single-label   the head's weights are calibrated in place (divided by the temperature fit on the
                 validation split), so a softmax over the logits of any loader above gives the calibrated
                 probabilities with no extra step
  multi-label    one logit per label: a sigmoid of each is its probability; the per-label thresholds
                 tuned on validation are task_spec.thresholds (config.problem_type is
                 "multi_label_classification" for transformers)
  regression     one output, the number itself in the target's units: the training standardisation is
                 folded into the head (config.problem_type "regression", num_labels 1)

`MANIFEST.json` (runs/manifest.py), written last, holds the size and SHA-256 of every file; graft verifies
it before loading a bundle (`verify_bundle`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from torch import nn

from graft._version import __version__
from graft.files import json_ready, replace_folder, staging_folder
from graft.models.vision import BuiltModel
from graft.runs.folder import BUNDLE_META
from graft.runs.manifest import folder_files, write_manifest

BUNDLE_FORMAT = 1


def write_bundle(
    out_dir: Path,
    built: BuiltModel,
    model: nn.Module,
    classes: list[str],
    metrics: dict[str, Any],
    source: dict[str, Any],
    tokenizer: Any = None,
    calibration: dict[str, Any] | None = None,
    task_spec: dict[str, Any] | None = None,
) -> Path:
    """Write the bundle next to `out_dir`, then swap it in, so a crash never leaves half a bundle.
    `task_spec`: what is predicted and how to decode it (graft/tasks/ `Task.to_meta`; none: single-label)."""
    tmp = staging_folder(out_dir)
    preprocessing = {k: _jsonable(v) for k, v in built.data_config.items()}
    task = "image-classification"
    if built.family == "transformers":
        # transformers' own layout (config.json with id2label/label2id, model.safetensors, tokenizer files):
        # AutoModelForSequenceClassification.from_pretrained and pipeline() load it as it is.
        if getattr(model.hf.config, "auto_map", None):  # never ship a pointer to code graft did not run
            del model.hf.config.auto_map
        model.hf.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        task = "text-classification"
    elif built.family == "timm":
        from timm.models import save_for_hf

        save_for_hf(
            model,
            str(tmp),
            model_config={"label_names": list(classes)},
            safe_serialization=True,
            data_config=dict(built.data_config),
        )
        # timm keeps the source weights' hub tag (e.g. "ra_in1k"); these weights are our fine-tune, not those.
        hf_config = json.loads((tmp / "config.json").read_text())
        hf_config["pretrained_cfg"].pop("tag", None)
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2))
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    meta = {
        "format": BUNDLE_FORMAT,
        "graft_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "task": task,
        "family": built.family,
        "arch": built.arch,
        # A custom nn.Module's class, recorded not imported: loading takes an object of it (model=).
        **({"module": built.arch} if built.family == "module" else {}),
        "num_classes": len(classes),
        "classes": list(classes),
        "preprocessing": preprocessing,
        "pretrained_weights": built.weights,
        "metrics": metrics,
        # Temperature scaling, already folded into the head's weights (evaluation/calibration.py): the
        # saved logits are the calibrated ones; recorded so the report can show ECE before and after.
        "calibration": calibration,
        # The task (graft/tasks/): single-label, multi-label with its per-label thresholds, or regression
        # (whose head already outputs the target's units). "task" above stays the pipeline's name.
        "task_spec": task_spec or {"name": "single-label", "problem_type": "single_label_classification"},
        **source,
    }
    (tmp / BUNDLE_META).write_text(json.dumps(json_ready(meta), indent=2))
    _follow_umask(tmp)  # safetensors writes 0600; a bundle is for sharing, like its siblings
    write_manifest(tmp, folder_files(tmp))  # last: predict, eval and export verify the bundle against it
    return replace_folder(tmp, out_dir)


def _follow_umask(folder: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.rglob("*"):
        if path.is_file():
            os.chmod(path, 0o666 & ~umask)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
