"""graft: fine-tune a pretrained backbone on your data, right by construction.

>>> import graft
>>> run = graft.train(data="my_images/", model="efficientnet_lite0", epochs=5)  # doctest: +SKIP
>>> graft.load(run.path).predict(["cat.jpg"])                                   # doctest: +SKIP
>>> graft.evaluate(run)["accuracy"], graft.export(run, format="onnx")           # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graft._version import __version__

__all__ = ["Run", "__version__", "check", "evaluate", "export", "load", "resume", "train"]

if TYPE_CHECKING:
    from graft.api import check, evaluate, export, load, resume, train
    from graft.workflow.train import Run

API = ("Run", "check", "evaluate", "export", "load", "resume", "train")


def __getattr__(name: str) -> Any:
    # torch + timm take seconds to import; `graft --help` and `import graft` should not pay for them.
    if name == "Run":  # from its own module, which imports torch: graft.load(backend="onnx") does not
        from graft.workflow.train import Run

        return Run
    if name in API:
        from graft import api

        return getattr(api, name)
    raise AttributeError(f"module 'graft' has no attribute {name!r}")
