"""graft: fine-tune a pretrained backbone on your data, right by construction.

>>> import graft
>>> run = graft.train(data="my_images/", model="efficientnet_lite0", epochs=5)  # doctest: +SKIP
>>> graft.load(run.path).predict(["cat.jpg"])                                   # doctest: +SKIP
>>> graft.evaluate(run)["accuracy"], graft.export(run, format="onnx")           # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from graft._version import __version__

__all__ = ["Run", "__version__", "check", "evaluate", "export", "load", "resume", "train"]

if TYPE_CHECKING:
    from graft.api import Run, check, evaluate, export, load, resume, train

API = ("Run", "check", "evaluate", "load", "resume", "train")


def __getattr__(name: str) -> Any:
    # torch + timm take seconds to import; `graft --help` and `import graft` should not pay for them.
    if name in API:
        from graft import api

        return getattr(api, name)
    if name == "export":  # the subpackage graft/export/, made callable as graft.api.export (see below)
        return importlib.import_module("graft.export")
    raise AttributeError(f"module 'graft' has no attribute {name!r}")


# `graft.export` is two things: the subpackage graft/export/ and the function graft.api.export. Importing
# the subpackage (anything that exports does) sets the attribute graft.export to it, which would replace a
# function of that name. So the subpackage itself is made callable, as soon as it is imported: then
# `graft.export(run, format="onnx")` and `graft.export.formats` both work, in either order.
class _CallableExport(types.ModuleType):
    def __call__(self, run_or_bundle: Any, format: str = "onnx", out: Any = None) -> Any:
        """graft.api.export: the bundle's model as onnx, pt2, torchscript or safetensors, verified."""
        from graft.api import export

        return export(run_or_bundle, format=format, out=out)


class _Graft(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "export" and type(value) is types.ModuleType:
            value.__class__ = _CallableExport
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Graft
