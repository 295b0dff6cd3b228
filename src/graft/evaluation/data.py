"""Which samples an evaluation runs on: a run's validation split, or data given with --data.

--data takes anything `graft train` takes (class folders, train/ + val/ [+ test/] folders, a
path,label[,split] CSV) and evaluates its most held-out part: the test split when there is one (a
test/ folder, split=test rows), else the validation split (val/, split=val), else every image. Its
labels must be classes the model knows; classes it lacks are fine (their rows in the report are empty).
For a text model the same holds for tables: a test/val file beside train.csv, or split=test/val rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from graft.data.discover import read_image_csv, scan_class_folders, split_of, subfolders
from graft.data.text_tables import TextColumns, TextSample, read_table, table_in
from graft.errors import GraftError
from graft.runs.folder import RunFolder
from graft.runs.split import TextRow, read_split

Item = Path | TextSample  # an image file, or a text (with its pair) for text tasks


@dataclass
class EvalData:
    items: list[Item]  # what each sample is, as the gallery shows it
    targets: list[int]  # indices into the model's classes
    description: str  # for the report: "validation split of runs/NAME"
    split: str  # "val", "test" or "all": which part of the data this is
    warnings: list[str] = field(default_factory=list)

    def counts(self, classes: list[str]) -> dict[str, int]:
        per = Counter(self.targets)
        return {name: per.get(i, 0) for i, name in enumerate(classes)}


def run_validation(run: Path, classes: list[str], text: bool = False) -> EvalData:
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
    return EvalData(*_with_targets(rows, classes, where), f"validation split of {run}", "val")


def data_at(
    path: Path, classes: list[str], text_columns: TextColumns | None = None,
    image_columns: tuple[str, str] = ("path", "label"),
) -> EvalData:  # fmt: skip
    """The samples of --data DIR_OR_CSV to evaluate (see the module docstring for which part); a model
    passes the columns it was trained with (texts: `text_columns`; image CSVs: path and label column)."""
    path = Path(path)
    if not path.exists():
        raise GraftError(f"data not found: {path} (expected a folder of class sub-folders or a CSV file)")
    if text_columns is not None:
        return _text_data_at(path, classes, text_columns)
    warnings: list[str] = []
    if path.is_file():
        rows = read_image_csv(path, *image_columns)
        splits = {split for _, _, split in rows}
        split = "test" if "test" in splits else "val" if "val" in splits else "all"
        chosen = [(p, label) for p, label, s in rows if split == "all" or s == split]
        where = f"{path.name}" + (f" (split={split} rows)" if split != "all" else "")
    else:
        folders = {split_of(d.name): d for d in subfolders(path) if split_of(d.name)}
        split = "test" if "test" in folders else "val" if "val" in folders else "all"
        folder = folders.get(split, path)
        chosen = scan_class_folders(folder, warnings, allow_empty_classes=True)
        where = f"{folder}"
    if not chosen:
        raise GraftError(f"{path} has no images to evaluate")
    items, targets = _with_targets(chosen, classes, path)
    return EvalData(items, targets, where, split, warnings)


def _text_data_at(path: Path, classes: list[str], columns: TextColumns) -> EvalData:
    if path.is_dir():  # a folder of tables: test.csv, else val.csv, as `graft train` would read them
        for split, stems in (("test", ("test", "testing")), ("val", ("val", "valid", "validation"))):  # noqa: B007  split is used after the loop
            table = table_in(path, stems)
            if table is not None:
                rows = _text_rows(table, columns)
                break
        else:
            raise GraftError(
                f"{path} has no test or val table (test.csv, val.csv, .tsv or .jsonl) to evaluate"
            )
        where = f"{table}"
    else:
        every = read_table(path, columns)
        splits = {row[3] for row in every}
        split = "test" if "test" in splits else "val" if "val" in splits else "all"
        rows = _text_rows(path, columns, None if split == "all" else split, every)
        where = f"{path.name}" + (f" (split={split} rows)" if split != "all" else "")
    items, targets = _with_targets(rows, classes, path)
    return EvalData(items, targets, where, split)


def _text_rows(
    path: Path, columns: TextColumns, split: str | None = None, rows: list | None = None
) -> list[tuple[TextSample, str]]:
    """(sample, label) of the rows of one split (None: all rows). The sample's own label index is unused
    (targets come from the label names), so it is -1."""
    rows = read_table(path, columns) if rows is None else rows
    return [
        (TextSample(text, -1, pair), label) for text, label, pair, s in rows if split is None or s == split
    ]


def _with_targets(
    rows: list[tuple[Item, str]], classes: list[str], where: Path
) -> tuple[list[Item], list[int]]:
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({label for _, label in rows} - set(index))
    if unknown:
        shown = ", ".join(unknown[:10]) + (f", ... ({len(unknown)} in all)" if len(unknown) > 10 else "")
        raise GraftError(
            f"{where} has classes the model was not trained on: {shown} "
            f"(it knows {len(classes)}: {', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''}); "
            "remove those samples or evaluate a model trained with them"
        )
    return [p for p, _ in rows], [index[label] for _, label in rows]
