"""What `graft eval` will do, decided before torch is imported: which bundle, which samples, which folder.

Every user error (no such run, a bundle outside its run without --data, unknown labels, an --out folder
that holds something else) is raised here, so it answers in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from graft.data.text_tables import TextColumns
from graft.errors import GraftError
from graft.evaluation.data import EvalData, Labels, data_at, run_validation
from graft.runs.folder import REPORT
from graft.runs.locate import Located, locate
from graft.runs.records import read_config

# Bundle tasks graft can evaluate; evaluate.LOGITS has how, one entry each.
EVALUATED_TASKS = ("image-classification", "text-classification")


@dataclass
class EvalPlan:
    located: Located
    data: EvalData
    out: Path  # the report folder

    @property
    def task(self) -> str:
        return self.located.meta.get("task", "image-classification")

    @property
    def prediction(self) -> str:
        """What the bundle predicts (graft/tasks/): single-label, multi-label or regression."""
        return self.data.task


def plan_evaluation(
    target: str | Path, data: str | Path | None = None, out: str | Path | None = None
) -> EvalPlan:
    located = locate(target)
    task = located.meta.get("task", "image-classification")
    if task not in EVALUATED_TASKS:
        raise GraftError(
            f"graft eval handles {', '.join(EVALUATED_TASKS)} bundles so far; {located.bundle} is {task}"
        )
    text = task == "text-classification"
    labels = label_reading(located)
    if data is not None:
        samples = data_at(Path(data), located.classes, text_columns(located) if text else None,
                          image_columns(located), labels, label_columns(located))  # fmt: skip
    elif located.run is not None:
        samples = run_validation(located.run, located.classes, text, labels)
    else:
        raise GraftError(
            f"{located.bundle} is not inside its run folder, so there is no validation split; "
            "pass the data to evaluate with --data DIR_OR_CSV"
        )
    out = Path(out) if out is not None else default_out(located, data)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "metrics.json").is_file())):
        raise GraftError(
            f"{out} exists and is not a graft report; choose another --out (nothing was changed)"
        )
    return EvalPlan(located, samples, out)


def text_columns(located: Located) -> TextColumns:
    """The columns the model was trained on (the run's config), else text,label."""
    data = read_config(located.run).get("data") or {} if located.run is not None else {}
    return TextColumns(data.get("text_column") or "text", data.get("label_column") or "label",
                       data.get("text_pair_column"))  # fmt: skip


def label_reading(located: Located) -> Labels:
    """The bundle's task (graft.json's task_spec; single-label before tasks existed) and the separator its
    run joined multi-label cells with (the run's config, else ';')."""
    data = read_config(located.run).get("data") or {} if located.run is not None else {}
    task = (located.meta.get("task_spec") or {}).get("name", "single-label")
    return Labels(task, data.get("label_separator") or Labels.separator)


def label_columns(located: Located) -> tuple[str, ...] | None:
    """The 0/1 label columns a multi-label run read (--label-columns), if it did."""
    data = read_config(located.run).get("data") or {} if located.run is not None else {}
    return tuple(data["label_columns"]) if data.get("label_columns") else None


def image_columns(located: Located) -> tuple[str, str]:
    """The path and label columns an image run read its CSV with (the run's config), else path,label."""
    data = read_config(located.run).get("data") or {} if located.run is not None else {}
    return data.get("path_column") or "path", data.get("label_column") or "label"


def default_out(located: Located, data: str | Path | None) -> Path:
    """RUN/report for the run's own validation split, RUN/report-DATA for --data DATA; a bundle outside a
    run folder gets BUNDLE-report-DATA beside it. An earlier report there is replaced, nothing else is."""
    suffix = f"-{Path(data).stem}" if data is not None else ""
    if located.run is not None:
        return located.run / f"{REPORT}{suffix}"
    return located.bundle.with_name(f"{located.bundle.name}-report{suffix}")
