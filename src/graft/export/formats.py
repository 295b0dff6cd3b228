"""`graft export`: a bundle's model as ONNX, a torch.export program, TorchScript or one safetensors file.

Each export is written to a temporary name, loaded back with the runtime that will serve it, compared
with the eager model (export/verify.py) and only then renamed into place, next to a sidecar JSON
(`<file>.json`) with everything needed to feed it: input name and shape, the preprocessing as numbers
and in words, the class names, and the verification result. By default exports go into the bundle
folder, so they travel with it and disappear with it when a resumed run rebuilds the bundle (an export
never outlives the weights it was made from).

    python -c "import onnxruntime as ort; ort.InferenceSession('runs/NAME/model/model.onnx')"
"""

from __future__ import annotations

import copy
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import graft
from graft.errors import GraftError, did_you_mean
from graft.export import preprocess
from graft.export.locate import Located, locate
from graft.export.onnx_predictor import onnx_session
from graft.export.verify import ATOL, Check, compare, verification_inputs

# 17: first opset with a native LayerNormalization (ViTs, ConvNeXts), and old enough that every
# runtime people deploy to (onnxruntime, TensorRT, OpenVINO, onnxruntime-web) takes it.
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"


@dataclass(frozen=True)
class Format:
    filename: str  # default file name inside the bundle
    load_hint: str  # how to run it, for the sidecar
    write: Callable[[nn.Module, torch.Tensor, Path, dict[str, Any]], None]  # header: for safetensors
    load: Callable[[Path, nn.Module], Callable[[torch.Tensor], torch.Tensor]]  # -> logits(x), to verify


def write_onnx(model: nn.Module, example: torch.Tensor, path: Path, header: dict[str, Any]) -> None:
    # The TorchScript-based exporter (dynamo=False): it traces timm and torchvision CNNs and ViTs reliably
    # and needs nothing beyond torch, while the torch.export-based one (the default since torch 2.9) needs
    # onnxscript, which is not a graft dependency. Its deprecation warning is not actionable for users.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )  # fmt: skip


def _load_onnx(path: Path, _: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    session = onnx_session(path)
    return lambda x: torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])


def _write_pt2(model: nn.Module, example: torch.Tensor, path: Path, header: dict[str, Any]) -> None:
    # torch.export: the non-deprecated successor of TorchScript; the batch axis is declared dynamic (the
    # example has 2 rows because export specializes sizes 0 and 1).
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))


def _load_pt2(path: Path, _: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return torch.export.load(str(path)).module()


def _write_torchscript(model: nn.Module, example: torch.Tensor, path: Path, header: dict[str, Any]) -> None:
    # torch.jit is deprecated in torch 2.14 but still what libtorch (C++) loads; the warnings say so on
    # every call, the CLI says it once.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
        torch.jit.save(torch.jit.trace(model, example), str(path))


def _load_torchscript(path: Path, _: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
        return torch.jit.load(str(path)).eval()


def _write_safetensors(model: nn.Module, example: torch.Tensor, path: Path, header: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    # "format": "pt" is what transformers/timm expect in a safetensors header; "graft" makes the file
    # self-describing (classes, preprocessing) without the sidecar.
    save_file(state, str(path), metadata={"format": "pt", "graft": json.dumps(header)})


def _load_safetensors(path: Path, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    from safetensors.torch import load_file

    fresh = copy.deepcopy(model)
    fresh.load_state_dict(load_file(str(path)))
    return fresh.eval()


FORMATS = {
    "onnx": Format(
        "model.onnx",
        f"onnxruntime.InferenceSession(path).run(None, {{'{INPUT_NAME}': x}})[0]",
        write_onnx,
        _load_onnx,
    ),
    "pt2": Format("model.pt2", "torch.export.load(path).module()(x)", _write_pt2, _load_pt2),
    "torchscript": Format(
        "model.torchscript.pt", "torch.jit.load(path)(x)", _write_torchscript, _load_torchscript
    ),
    "safetensors": Format(
        "model.standalone.safetensors",
        "model.load_state_dict(safetensors.torch.load_file(path)); the header's 'graft' entry holds classes "
        "and preprocessing",
        _write_safetensors,
        _load_safetensors,
    ),
}


@dataclass
class Exported:
    path: Path
    sidecar: Path
    format: str
    check: Check
    seconds: float


def export(target: str | Path, fmt: str, out: str | Path | None = None, atol: float = ATOL) -> Exported:
    """Export, verify, then write `out` (default: inside the bundle) and its sidecar `out.json`.

    >>> export("runs/NAME", "onnx").path              # doctest: +SKIP
    PosixPath('runs/NAME/model/model.onnx')
    """
    if fmt not in FORMATS:
        raise GraftError(
            f"unknown export format {fmt!r}{did_you_mean(fmt, FORMATS)}; choose one of {', '.join(FORMATS)}"
        )
    located = locate(target)
    if located.meta.get("task", "image-classification") != "image-classification":
        raise GraftError(
            f"graft export handles image models so far; {located.bundle} is a {located.meta['task']} bundle"
        )
    spec = FORMATS[fmt]
    out = Path(out) if out is not None else located.bundle / spec.filename
    if out.is_dir():
        out = out / spec.filename
    from graft.inference import Predictor

    started = time.perf_counter()
    predictor = Predictor.from_path(located.bundle, device="cpu")
    model = predictor.model.eval()
    inputs, what = verification_inputs(located, predictor.transform, predictor.data_config["input_size"])
    header = _header(located, predictor.data_config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")  # torch.export.load wants the .pt2 suffix
    try:
        example = inputs[:2] if len(inputs) >= 2 else torch.cat([inputs, inputs])
        try:
            with torch.no_grad():
                spec.write(model, example, tmp, header)
        except (RuntimeError, ValueError, TypeError, AssertionError) as err:  # what torch's exporters raise
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise GraftError(f"cannot export {located.meta['arch']} to {fmt}: {first[:300]}") from None
        check = compare(model, spec.load(tmp, model), inputs, what, fmt, atol)
        sidecar = {
            **header,
            "format": fmt,
            "file": out.name,
            "load": spec.load_hint,
            "verification": check.to_dict(),
        }
        if fmt == "onnx":
            sidecar["opset"] = OPSET
        sidecar_tmp = tmp.with_name(tmp.name + ".json")
        sidecar_tmp.write_text(json.dumps(sidecar, indent=2))
        os.replace(tmp, out)
        os.replace(sidecar_tmp, out.with_name(out.name + ".json"))
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".json")):
            leftover.unlink(missing_ok=True)
    return Exported(out, out.with_name(out.name + ".json"), fmt, check, time.perf_counter() - started)


def _header(located: Located, data_config: dict[str, Any]) -> dict[str, Any]:
    """What a consumer of the file needs: classes, input, preprocessing; and what it was made from."""
    meta = located.meta
    _, height, width = data_config["input_size"]
    pre = {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()}
    return {
        "graft_version": graft.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "arch": meta["arch"],
        "family": meta["family"],
        "task": meta.get("task", "image-classification"),
        "bundle": str(located.bundle),
        "bundle_created": meta.get("created"),
        "checkpoint": meta.get("checkpoint"),
        "num_classes": meta["num_classes"],
        "classes": list(meta["classes"]),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, height, width],
            "dtype": "float32",
            "layout": "NCHW, RGB",
        },  # fmt: skip
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", meta["num_classes"]],
            "meaning": "unnormalized class scores, in the order of `classes`; softmax gives probabilities",
        },  # fmt: skip
        "preprocessing": pre,
        "preprocessing_steps": preprocess.describe(pre),
    }
