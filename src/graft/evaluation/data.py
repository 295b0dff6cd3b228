"""Which samples an evaluation runs on: a run's validation split, or data given with --data.

--data takes anything `graft train` takes (class folders, train/ + val/ [+ test/] folders, a
path,label[,split] CSV) and evaluates its most held-out part: the test split when there is one (a
test/ folder, split=test rows), else the validation split (val/, split=val), else every image. Its
labels must be classes the model knows; classes it lacks are fine (their rows in the report are empty).
For a text model the same holds for tables: a test/val file beside train.csv, or split=test/val rows.

Label cells are read with the bundle's task (data/label_kind.py): a class name (single-label), labels
joined by the run's separator, ';' by default (multi-label; an empty cell is an empty set), or a number
(regression). Class folders are single-label data only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from graft.data.discover import Label, read_image_csv, scan_class_folders, split_of, subfolders
from graft.data.folder_labels import merge_copies
from graft.data.label_kind import SEPARATOR, interpret, split_labels
from graft.data.text_tables import TextColumns, TextSample, read_table, table_in
from graft.errors import GraftError
from graft.runs.folder import RunFolder
from graft.runs.split import TextRow, read_split

Item = Path | TextSample  # an image file, or a text (with its pair) for text tasks


@dataclass(frozen=True)
class Labels:
    """How the bundle reads a label cell: its task (graft/tasks/) and a multi-label cell's separator."""

    task: str = "single-label"
    separator: str = SEPARATOR


@dataclass
class EvalData:
    items: list[Item]  # what each sample is, as the gallery shows it
    # single-label: an index into the model's classes; multi-label: a tuple of them; regression: the number
    targets: list[Label]
    description: str  # for the report: "validation split of runs/NAME"
    split: str  # "val", "test" or "all": which part of the data this is
    warnings: list[str] = field(default_factory=list)
    task: str = "single-label"

    def counts(self, classes: list[str]) -> dict[str, int]:
        """Samples per class (multi-label: per label present; regression: all, under the target's name)."""
        if self.task == "regression":
            return {classes[0]: len(self.targets)}
        per = Counter(i for t in self.targets for i in (t if isinstance(t, tuple) else (t,)))
        return {name: per.get(i, 0) for i, name in enumerate(classes)}


def run_validation(run: Path, classes: list[str], text: bool = False, labels: Labels = Labels()) -> EvalData:
    """The validation samples of `run` as recorded in its split.csv."""
    where = RunFolder(run).split
    hint = "pass the data to evaluate with --data " + ("FILE" if text else "DIR_OR_CSV")
    try:
        recorded = read_split(run, "val")
    except GraftError as err:
        raise GraftError(f"{err}; {hint}") from None
    # The sample's own label index is unused (targets come from the label names), so a text's is -1.
    rows: list[tuple[Item, str]] = [
        (TextSample(r.text, -1, r.pair), r.label) if isinstance(r, TextRow) else (r.path, r.label)
        for r in recorded
        if isinstance(r, TextRow) == text
    ]
    if not rows:
        raise GraftError(f"{where} has no val rows of {'texts' if text else 'images'}; {hint}")
    missing = [str(p) for p, _ in rows if isinstance(p, Path) and not p.is_file()]
    if missing:
        raise GraftError(
            f"{len(missing)} validation file(s) listed in {where} no longer exist, e.g. {missing[0]}; {hint}"
        )
    items, targets = _with_targets(rows, classes, where, labels, "label")
    return EvalData(items, targets, f"validation split of {run}", "val", task=labels.task)


def data_at(
    path: Path, classes: list[str], text_columns: TextColumns | None = None,
    image_columns: tuple[str, str] = ("path", "label"), labels: Labels = Labels(),
    label_columns: tuple[str, ...] | None = None,
) -> EvalData:  # fmt: skip
    """The samples of --data DIR_OR_CSV to evaluate (see the module docstring for which part); a model
    passes the columns it was trained with (texts: `text_columns`; image CSVs: path and label column;
    `label_columns`: multi-label as 0/1 columns) and how it reads labels."""
    path = Path(path)
    if not path.exists():
        raise GraftError(f"data not found: {path} (expected a folder of class sub-folders or a CSV file)")
    if text_columns is not None:
        return _text_data_at(path, classes, _columns(text_columns, labels, label_columns), labels)
    warnings: list[str] = []
    column = image_columns[1]
    if path.is_file():
        columns = _columns(TextColumns(label=image_columns[1]), labels, label_columns)
        rows, column = read_image_csv(path, image_columns[0], columns)
        splits = {split for _, _, split in rows}
        split = "test" if "test" in splits else "val" if "val" in splits else "all"
        chosen = [(p, label) for p, label, s in rows if split == "all" or s == split]
        where = f"{path.name}" + (f" (split={split} rows)" if split != "all" else "")
    else:
        if labels.task == "regression":
            raise GraftError(
                f"{path} is a folder of class folders; this model is regression: pass a CSV with path and "
                "target columns instead"
            )
        folders = {split_of(d.name): d for d in subfolders(path) if split_of(d.name)}
        split = "test" if "test" in folders else "val" if "val" in folders else "all"
        folder = folders.get(split, path)
        chosen = scan_class_folders(folder, warnings, allow_empty_classes=True)
        if labels.task == "multi-label":  # a file under several class folders has all their labels
            chosen = merge_copies(chosen, True, labels.separator)[0]
        where = f"{folder}"
    if not chosen:
        raise GraftError(f"{path} has no images to evaluate")
    items, targets = _with_targets(chosen, classes, path, labels, column or "label")
    return EvalData(items, targets, where, split, warnings, labels.task)


def _columns(columns: TextColumns, labels: Labels, label_columns: tuple[str, ...] | None) -> TextColumns:
    """The columns as training read them: a multi-label cell may be empty (no label on)."""
    multi = labels.task == "multi-label"
    return replace(columns, separator=labels.separator, empty_labels=multi,
                   label_columns=label_columns if multi else None)  # fmt: skip


def _text_data_at(path: Path, classes: list[str], columns: TextColumns, labels: Labels) -> EvalData:
    if path.is_dir():  # a folder of tables: test.csv, else val.csv, as `graft train` would read them
        for split, stems in (("test", ("test", "testing")), ("val", ("val", "valid", "validation"))):  # noqa: B007  split is used after the loop
            table = table_in(path, stems)
            if table is not None:
                every, column = read_table(table, columns)
                rows = _text_rows(every)
                break
        else:
            raise GraftError(
                f"{path} has no test or val table (test.csv, val.csv, .tsv or .jsonl) to evaluate"
            )
        where = f"{table}"
    else:
        every, column = read_table(path, columns)
        splits = {row[3] for row in every}
        split = "test" if "test" in splits else "val" if "val" in splits else "all"
        rows = _text_rows(every, None if split == "all" else split)
        where = f"{path.name}" + (f" (split={split} rows)" if split != "all" else "")
    items, targets = _with_targets(rows, classes, path, labels, column or "label")
    return EvalData(items, targets, where, split, task=labels.task)


def _text_rows(rows: list, split: str | None = None) -> list[tuple[TextSample, str]]:
    """(sample, label) of the rows of one split (None: all rows). The sample's own label index is unused
    (targets come from the label names), so it is -1."""
    return [
        (TextSample(text, -1, pair), label) for text, label, pair, s in rows if split is None or s == split
    ]


def _with_targets(
    rows: list[tuple[Item, str]], classes: list[str], where: Path, labels: Labels, column: str
) -> tuple[list[Item], list[Label]]:
    cells = [label for _, label in rows]
    if labels.task == "regression":  # interpret raises for a cell that is not a number
        read = interpret([], cells, "regression", str(where), column)
        return [p for p, _ in rows], [read.encode(cell) for cell in cells]
    names = (
        [name for cell in cells for name in split_labels(cell, labels.separator)]
        if labels.task == "multi-label"
        else cells
    )
    unknown = sorted(set(names) - set(classes))
    if unknown:
        shown = ", ".join(unknown[:10]) + (f", ... ({len(unknown)} in all)" if len(unknown) > 10 else "")
        raise GraftError(
            f"{where} has {'labels' if labels.task == 'multi-label' else 'classes'} the model was not trained "
            f"on: {shown} (it knows {len(classes)}: {', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''}); "
            "remove those samples or evaluate a model trained with them"
        )
    index = {name: i for i, name in enumerate(classes)}
    if labels.task == "multi-label":
        # interpret's indices are into the sorted classes it found; mapped back to the bundle's by name
        read = interpret(classes, cells, "multi-label", str(where), column, labels.separator)
        targets = [tuple(sorted(index[read.classes[i]] for i in read.encode(cell))) for cell in cells]
        return [p for p, _ in rows], targets
    return [p for p, _ in rows], [index[label] for label in cells]
