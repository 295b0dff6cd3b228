"""`graft export`: a bundle's model as ONNX, a torch.export program, TorchScript or one safetensors file.

Each export is written to a temporary name, loaded back with the runtime that will serve it, compared
with the eager model (exporting/verify.py) and only then renamed into place, next to a sidecar JSON
(`<file>.json`) with everything needed to feed it: input names and shapes, the preprocessing as numbers
and in words (for a text model: the tokenizer, whose files go beside the export), the class names, and
the verification result. By default exports go into the bundle
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

from graft._version import __version__
from graft.errors import GraftError, did_you_mean
from graft.exporting.verify import ATOL, Check, Inputs, compare, verification_inputs
from graft.predict import preprocess
from graft.predict.onnx import onnx_session
from graft.progress import progress_to, status
from graft.runs.locate import Located, locate
from graft.runs.manifest import digest

# 17: first opset with a native LayerNormalization (ViTs, ConvNeXts), and old enough that every
# runtime people deploy to (onnxruntime, TensorRT, OpenVINO, onnxruntime-web) takes it.
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"


@dataclass(frozen=True)
class ModelIO:
    """The model's positional inputs and which of their axes vary."""

    names: tuple[str, ...]
    axes: dict[int, str]  # dynamic axes of every input


IMAGE_IO = ModelIO((INPUT_NAME,), {0: "batch"})


@dataclass(frozen=True)
class Format:
    filename: str  # default file name inside the bundle
    load_hint: str  # how to run it, for the sidecar
    write: Callable[[nn.Module, Inputs, Path, dict[str, Any], ModelIO], None]  # header: for safetensors
    load: Callable[[Path, nn.Module, ModelIO], Callable[..., torch.Tensor]]  # -> logits(*x), to verify


def write_onnx(model: nn.Module, example: Inputs, path: Path, header: dict[str, Any], io: ModelIO) -> None:
    # The TorchScript-based exporter (dynamo=False): it traces timm and torchvision CNNs and ViTs reliably
    # and needs nothing beyond torch, while the torch.export-based one (the default since torch 2.9) needs
    # onnxscript, which is not a graft dependency. Its deprecation warning is not actionable for users.
    with warnings.catch_warnings():
        # Tracing warns about every data-dependent Python branch (transformers' masking has several); the
        # export is verified on real inputs at two batch sizes and sequence lengths instead.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*advanced indexing.*")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        torch.onnx.export(
            model, example, str(path), dynamo=False, opset_version=OPSET,
            input_names=list(io.names), output_names=[OUTPUT_NAME],
            dynamic_axes={**{name: io.axes for name in io.names}, OUTPUT_NAME: {0: "batch"}},
        )  # fmt: skip


def _load_onnx(path: Path, _: nn.Module, io: ModelIO) -> Callable[..., torch.Tensor]:
    session = onnx_session(path)
    return lambda *xs: torch.from_numpy(
        session.run([OUTPUT_NAME], {name: x.numpy() for name, x in zip(io.names, xs)})[0]
    )


def _write_pt2(model: nn.Module, example: Inputs, path: Path, header: dict[str, Any], io: ModelIO) -> None:
    # torch.export: the non-deprecated successor of TorchScript; the batch (and sequence) axes are declared
    # dynamic (the example has 2 rows because export specializes sizes 0 and 1).
    # A text model's sequence axis is bounded by its position embeddings: at most the max_length it was
    # trained with (what the tokenizer truncates to).
    longest = {"batch": 65536, "sequence": header.get("tokenizer", {}).get("max_length", 512)}
    dims = {axis: torch.export.Dim(name, min=2 if name == "sequence" else 1, max=longest[name])
            for axis, name in io.axes.items()}  # fmt: skip
    program = torch.export.export(model, example, dynamic_shapes=tuple(dims for _ in io.names))
    torch.export.save(program, str(path))


def _load_pt2(path: Path, _: nn.Module, io: ModelIO) -> Callable[..., torch.Tensor]:
    return torch.export.load(str(path)).module()


def _write_torchscript(
    model: nn.Module, example: Inputs, path: Path, header: dict[str, Any], io: ModelIO
) -> None:
    # torch.jit is deprecated in torch 2.14 but still what libtorch (C++) loads; the warnings say so on
    # every call, the CLI says it once.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # verified on real inputs instead
        torch.jit.save(torch.jit.trace(model, example), str(path))


def _load_torchscript(path: Path, _: nn.Module, io: ModelIO) -> Callable[..., torch.Tensor]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
        return torch.jit.load(str(path)).eval()


def _write_safetensors(
    model: nn.Module, example: Inputs, path: Path, header: dict[str, Any], io: ModelIO
) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    # "format": "pt" is what transformers/timm expect in a safetensors header; "graft" makes the file
    # self-describing (classes, preprocessing) without the sidecar.
    save_file(state, str(path), metadata={"format": "pt", "graft": json.dumps(header)})


def _load_safetensors(path: Path, model: nn.Module, io: ModelIO) -> Callable[..., torch.Tensor]:
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


def export(
    target: str | Path,
    fmt: str,
    out: str | Path | None = None,
    atol: float = ATOL,
    model: Any = None,
    quiet: bool = False,
) -> Exported:
    """Export, verify, then write `out` (default: inside the bundle) and its sidecar `out.json`; a spinner
    on stderr while each runs, unless `quiet`. `model`: for a custom module's bundle, an object of its
    architecture (graft.load's `model=`).

    >>> export("runs/NAME", "onnx").path              # doctest: +SKIP
    PosixPath('runs/NAME/model/model.onnx')
    """
    with progress_to(None, quiet):
        return _export(target, fmt, out, atol, model)


def _export(target: str | Path, fmt: str, out: str | Path | None, atol: float, model: Any) -> Exported:
    if fmt not in FORMATS:
        raise GraftError(
            f"unknown export format {fmt!r}{did_you_mean(fmt, FORMATS)}; choose one of {', '.join(FORMATS)}"
        )
    located = locate(target)
    text = located.meta.get("task") == "text-classification"
    spec = FORMATS[fmt]
    out = Path(out) if out is not None else located.bundle / spec.filename
    if out.is_dir():
        out = out / spec.filename
    from graft.predict.images import Predictor

    started = time.perf_counter()
    predictor = Predictor.from_path(located.bundle, device="cpu", model=model)
    if text:
        from graft.exporting.text_export import (
            TextLogits,
            input_names,
            keep_tokenizer_beside,
            text_cases,
            text_header,
        )

        io = ModelIO(input_names(predictor.tokenizer), {0: "batch", 1: "sequence"})
        model = TextLogits(predictor.model.hf).eval()
        cases, what = text_cases(located, predictor)
        header = {**_header(located), **text_header(predictor, located.meta)}
    else:
        io, model = IMAGE_IO, predictor.model.eval()
        cases, what = verification_inputs(located, predictor.transform, predictor.data_config["input_size"])
        header = {**_header(located), **_image_header(predictor.data_config)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")  # torch.export.load wants the .pt2 suffix
    try:
        rows = cases[0]
        example = tuple(t[:2] if len(t) >= 2 else torch.cat([t, t]) for t in rows)
        try:
            with torch.no_grad(), status(f"export tracing and writing {located.meta['arch']} as {fmt}"):
                spec.write(model, example, tmp, header, io)
        except (RuntimeError, ValueError, TypeError, AssertionError) as err:  # what torch's exporters raise
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise GraftError(f"cannot export {located.meta['arch']} to {fmt}: {first[:300]}") from None
        with status(f"export verifying the {fmt} file against PyTorch on {what}"):
            check = compare(
                model, spec.load(tmp, model, io), cases, what, fmt, atol, located.meta.get("task_spec")
            )
        sidecar = {
            **header,
            "format": fmt,
            "file": out.name,
            "file_digest": digest(tmp),  # the ONNX backend checks the file against it before loading
            "load": spec.load_hint,
            "verification": check.to_dict(),
        }
        if fmt == "onnx":
            sidecar["opset"] = OPSET
        sidecar_tmp = tmp.with_name(tmp.name + ".json")
        sidecar_tmp.write_text(json.dumps(sidecar, indent=2))
        if text:
            keep_tokenizer_beside(predictor, out.parent, located.bundle)
        os.replace(tmp, out)
        os.replace(sidecar_tmp, out.with_name(out.name + ".json"))
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".json")):
            leftover.unlink(missing_ok=True)
    return Exported(out, out.with_name(out.name + ".json"), fmt, check, time.perf_counter() - started)


OUTPUT_MEANING = {
    "single-label": "unnormalized class scores, in the order of `classes`; softmax gives probabilities",
    "multi-label": "one logit per label, in the order of `classes`; a sigmoid of each gives its probability, "
    "and a label is predicted when that reaches its threshold in task_spec.thresholds",
    "regression": "the predicted {target} itself, in its own units (the training scaling is folded into the "
    "model): no softmax, no sigmoid",
}


def _header(located: Located) -> dict[str, Any]:
    """What a consumer of the file needs: classes, the task and the outputs; and what it was made from."""
    meta = located.meta
    task_spec = meta.get("task_spec") or {
        "name": "single-label",
        "problem_type": "single_label_classification",
    }
    return {
        "graft_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "arch": meta["arch"],
        "family": meta["family"],
        "task": meta.get("task", "image-classification"),
        "bundle": str(located.bundle),
        "bundle_created": meta.get("created"),
        "checkpoint": meta.get("checkpoint"),
        "num_classes": meta["num_classes"],
        "classes": list(meta["classes"]),
        # What the outputs are and how to decode them (graft/tasks/): predict --backend onnx reads it.
        "task_spec": task_spec,
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", meta["num_classes"]],
            "meaning": OUTPUT_MEANING[task_spec["name"]].format(target=task_spec.get("target", "value")),
        },
    }


def _image_header(data_config: dict[str, Any]) -> dict[str, Any]:
    """The input an image model takes, and the preprocessing that makes it, as numbers and in words."""
    _, height, width = data_config["input_size"]
    pre = {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()}
    return {
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, height, width],
            "dtype": "float32",
            "layout": "NCHW, RGB",
        },  # fmt: skip
        "preprocessing": pre,
        "preprocessing_steps": preprocess.describe(pre),
    }
