"""graft.train / graft.check on in-memory data: a pandas DataFrame, (path or text, label) pairs, a torch
Dataset or a Hugging Face dataset go through the same discovery, checks, split.csv and resume as a CSV
(images held in memory are written once into the cache, pointed at tmp_path here); other objects get one
line naming what is accepted (not a dump of the object)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import graft
from conftest import COLORS, TINY
from graft.data.in_memory import as_data_path
from graft.errors import GraftError


def _pairs(folder: Path) -> list[tuple[str, str]]:
    return [(str(p), p.parent.name) for p in sorted(folder.rglob("*.png"))]


def test_a_dataframe_of_relative_paths_trains_and_resumes(tmp_path, color_folder, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame([(os.path.relpath(p, tmp_path), label) for p, label in _pairs(color_folder)],
                         columns=["path", "label"])  # fmt: skip
    run = graft.train(frame, out=tmp_path / "run", **{**TINY, "epochs": 1})
    assert sorted(run.classes) == ["blue", "green", "red"]
    split = (run.path / "split.csv").read_text().splitlines()
    assert all(
        Path(line.split(",")[0]).is_absolute() for line in split[1:]
    )  # the run no longer needs the table
    assert graft.resume(run.path, epochs=2).history[-1]["epoch"] == 2


def test_a_dataframe_path_column_is_found_as_discovery_finds_it(tmp_path, color_folder, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [(os.path.relpath(p, tmp_path), label) for p, label in _pairs(color_folder)]
    report = graft.check(pd.DataFrame(rows, columns=["Path", "label"]))  # discovery reads 'Path' as 'path'
    assert sum(report.counts["train"].values()) + sum(report.counts["val"].values()) == len(rows)
    gappy = pd.DataFrame(rows[:-1] + [(None, "red")], columns=["path", "label"])
    with pytest.raises(GraftError, match="empty path or label"):  # one line, not a TypeError from Path(NaN)
        graft.check(gappy)


def test_pairs_of_paths_and_of_texts(tmp_path, color_folder):
    run = graft.train(_pairs(color_folder), out=tmp_path / "run", **{**TINY, "epochs": 1})
    assert run.modality == "image" and len(run.classes) == 3
    texts = [
        (f"a {'fine' if i % 2 else 'poor'} film number {i}", "pos" if i % 2 else "neg") for i in range(40)
    ]
    report = graft.check(texts)
    assert report.modality == "text" and report.classes == ["neg", "pos"]
    assert sum(report.counts["train"].values()) + sum(report.counts["val"].values()) == 40


def test_pairs_are_images_or_texts_by_what_they_hold_and_labels_by_what_they_are(tmp_path, color_folder):
    import torch

    long_texts = [(f"{'a fine, moving film ' * 15}{i}", "pos") for i in range(10)]  # 300+ chars: no file name
    long_texts += [(f"{'a poor, dull film ' * 15}{i}", "neg") for i in range(10)]
    assert graft.check(long_texts).modality == "text"
    pairs = _pairs(color_folder)
    with pytest.raises(GraftError, match=r"1 listed file\(s\) do not exist, e.g. .*typo\.png"):
        graft.check([(str(color_folder / "blue" / "typo.png"), "blue"), *pairs])  # not texts of names
    indices = [(path, torch.tensor(i % 3)) for i, (path, _) in enumerate(pairs)]
    assert graft.check(indices).classes == ["0", "1", "2"]  # not 'tensor(0)'
    names = [(path, [label, "photo"] if i % 2 else [label]) for i, (path, label) in enumerate(pairs)]
    report = graft.check(names)
    assert (report.task, report.classes) == ("multi-label", ["blue", "green", "photo", "red"])


@pytest.mark.parametrize(
    "data", [{"path": "x"}, object(), [("a", "b", "c")], []], ids=["dict", "object", "triples", "empty"]
)
def test_other_data_is_one_line_naming_what_is_accepted(data):
    with pytest.raises(GraftError, match="graft.train takes a folder or CSV path, a pandas DataFrame") as err:
        graft.train(data, model="test_resnet")
    assert "\n" not in str(err.value) and len(str(err.value)) < 200


def test_a_model_that_is_no_module_is_one_line(color_folder):
    # nn.Module objects are taken (tests/test_module_input.py); anything else is named with what is.
    with pytest.raises(
        GraftError, match=r"model: got a builtins\.object; graft.train takes a model name .* or an nn.Module"
    ):
        graft.train(color_folder, model=object())


# ---- dataset objects: torch Datasets and Hugging Face datasets, written to files once -----------------------


class ColorDataset:
    """A map-style dataset of (PIL image, class index) with `.classes`, as torchvision's are (a torch Dataset
    subclass when torch is there: both are accepted)."""

    classes = list(COLORS)

    def __init__(self, per_class: int = 16, size: int = 24, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.items = [
            (Image.fromarray(np.clip(rng.normal(rgb, 50, (size, size, 3)), 0, 255).astype(np.uint8)), index)
            for index, rgb in enumerate(COLORS.values())
            for _ in range(per_class)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("GRAFT_CACHE_DIR", str(folder))
    return folder


def _written(cache: Path) -> list[Path]:
    return sorted((cache / "datasets").iterdir()) if (cache / "datasets").is_dir() else []


def test_a_torch_dataset_of_pil_images_trains_resumes_and_predicts_without_the_object(tmp_path, cache):
    import torch

    class Colors(ColorDataset, torch.utils.data.Dataset):
        pass

    data = Colors()
    run = graft.train(data, out=tmp_path / "run", **{**TINY, "epochs": 2})
    assert run.classes == ["blue", "green", "red"]  # the dataset's .classes name its indices
    (folder,) = _written(cache)
    rows = (run.path / "split.csv").read_text().splitlines()[1:]
    assert len(rows) == len(data) and all(row.startswith(str(folder / "images")) for row in rows)
    # Lossless: the file of item 5 holds item 5's pixels, and its label is item 5's class.
    row5 = next(row for row in rows if row.split(",")[0].endswith("images/000005.png"))
    assert np.array_equal(np.asarray(Image.open(row5.split(",")[0])), np.asarray(data[5][0]))
    assert row5.split(",")[1] == "blue"
    del data
    assert graft.resume(run.path, epochs=3).history[-1]["epoch"] == 3  # from split.csv: no dataset needed
    (prediction,) = graft.load(run.path).predict(ColorDataset()[40][0])  # items 32-47 are red
    assert prediction.label == "red"


def test_an_image_folder_and_a_subset_of_it_use_their_files(tmp_path, cache, color_folder):
    import torch
    from torchvision import datasets, transforms

    folder = datasets.ImageFolder(str(color_folder), transform=transforms.ToTensor())
    with pytest.warns(UserWarning, match="transform is not applied"):
        report = graft.check(folder)
    assert report.classes == ["blue", "green", "red"] and report.task == "single-label"
    assert sum(report.counts["train"].values()) + sum(report.counts["val"].values()) == 48
    subset = torch.utils.data.Subset(datasets.ImageFolder(str(color_folder)), list(range(0, 48, 2)))
    table = as_data_path(subset).path
    listed = [line.split(",")[0] for line in table.read_text().splitlines()[1:]]
    assert listed == [
        str(Path(path).resolve()) for path, _ in folder.samples[::2]
    ]  # the files themselves, in the subset's order
    assert _written(cache) == []  # nothing re-encoded


def test_a_tensor_dataset_is_written_exactly_and_a_normalized_one_is_refused(tmp_path, cache):
    import torch

    torch.manual_seed(0)
    pixels = torch.rand(24, 3, 12, 10)  # float CxHxW in [0, 1]
    labels = torch.arange(24) % 3
    table = as_data_path(torch.utils.data.TensorDataset(pixels, labels))
    assert table.task == "single-label"
    header, *rows = table.path.read_text().splitlines()
    assert header == "path,label,split" and [row.split(",")[1] for row in rows[:4]] == ["0", "1", "2", "0"]
    first = np.asarray(Image.open(table.path.parent / rows[0].split(",")[0]))
    assert first.shape == (12, 10, 3)
    assert np.array_equal(first, np.rint(pixels[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    assert graft.check(torch.utils.data.TensorDataset(pixels, labels)).classes == ["0", "1", "2"]
    held_out = torch.utils.data.TensorDataset(pixels[:6].flip(-1), labels[:6])  # val= an object too
    assert (
        sum(graft.check(torch.utils.data.TensorDataset(pixels, labels), val=held_out).counts["val"].values())
        == 6
    )

    normalized = (pixels - 0.45) / 0.225  # what transforms.Normalize returns
    with pytest.raises(GraftError, match=r"item 0's sample .* float pixels must be in \[0, 1\].*un-normalized, "
                                         "un-augmented") as err:  # fmt: skip
        graft.train(torch.utils.data.TensorDataset(normalized, labels), **TINY)
    assert "\n" not in str(err.value)


def test_a_dataset_that_augments_at_random_is_refused(cache):
    import torch

    class Augmented(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return torch.rand(3, 8, 8), i % 2  # a new sample at every read: a random transform

    with pytest.raises(GraftError, match="item 0 of the dataset changed between two reads"):
        graft.check(Augmented())

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from ColorDataset().items

    with pytest.raises(GraftError, match="an IterableDataset: it has no length"):
        graft.check(Stream())
    with pytest.raises(GraftError, match=r"item 0 of the dataset is a dict; graft reads \(sample, label\)"):
        graft.check(torch.utils.data.StackDataset(image=torch.zeros(4, 3, 8, 8), label=torch.zeros(4)))
    assert _written(cache) == []  # refused before anything was kept


def test_a_text_dataset_with_names_numbers_and_multi_hot_labels(cache):
    import torch

    class Reviews(torch.utils.data.Dataset):
        classes = ["neg", "pos"]

        def __init__(self, label):
            self.label = label

        def __len__(self):
            return 30

        def __getitem__(self, i):
            return f"a {'fine' if i % 2 else 'poor'} film, number {i}", self.label(i)

    report = graft.check(Reviews(lambda i: i % 2))
    assert report.modality == "text" and report.classes == ["neg", "pos"] and report.task == "single-label"
    assert graft.check(Reviews(lambda i: float(i))).task == "regression"  # a float label: a number to predict
    multi = graft.check(Reviews(lambda i: torch.tensor([i % 2, i % 3 == 0], dtype=torch.float32)))
    assert multi.task == "multi-label" and multi.classes == ["neg", "pos"]
    # numpy's scalars, as a dataset built from numpy arrays returns them: a bool, a list(row) of a 0/1 matrix
    assert graft.check(Reviews(lambda i: np.bool_(i % 2))).classes == ["neg", "pos"]
    listed = graft.check(Reviews(lambda i: list(np.array([i % 2, i % 3 == 0], dtype=np.int64))))
    assert listed.task == "multi-label" and listed.classes == ["neg", "pos"]
    scores = graft.check(Reviews(lambda i: torch.tensor(i / 10, dtype=torch.bfloat16)))  # numpy has no bf16
    assert scores.task == "regression"
    assert _written(cache) == []  # texts are CSV cells, no files


def _hf_images(n_per_class: int = 8):
    import datasets

    images, labels = zip(*ColorDataset(n_per_class).items)
    features = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(names=["b", "g", "r"])}
    )
    return datasets.Dataset.from_dict({"img": list(images), "label": list(labels)}, features=features)


def test_a_hugging_face_image_dataset_trains_with_its_class_names(tmp_path, cache):
    import datasets

    hf = _hf_images()
    run = graft.train(hf, out=tmp_path / "run", **{**TINY, "epochs": 1})
    meta = json.loads((run.path / "model" / "graft.json").read_text())
    assert run.classes == ["b", "g", "r"] and meta["classes"] == ["b", "g", "r"]
    (folder,) = _written(cache)
    stored = hf.cast_column("img", datasets.Image(decode=False))[3]["img"]["bytes"]
    assert (folder / "images" / "000003.png").read_bytes() == stored  # the stored PNG, not re-encoded


def test_the_cache_folder_is_reused_for_the_same_data_only(cache):
    first = as_data_path(_hf_images()).path
    mtime = (first.parent / "images" / "000000.png").stat().st_mtime_ns
    again = as_data_path(_hf_images()).path
    assert again == first and (first.parent / "images" / "000000.png").stat().st_mtime_ns == mtime
    assert as_data_path(ColorDataset()).path.parent != first.parent  # other bytes: another folder
    other = as_data_path(_hf_images(n_per_class=7)).path
    assert other != first and len(_written(cache)) == 3  # and no staging folder left behind
    assert as_data_path(ColorDataset()).path == as_data_path(ColorDataset()).path


def test_an_interrupted_write_is_never_reused(cache):
    class Failing(ColorDataset):
        def __getitem__(self, i):
            if i == 30:
                raise OSError("disk gone")
            return super().__getitem__(i)

    abandoned = cache / "datasets" / f".tmp-{socket.gethostname()}-999999999-dead"  # a killed writer's
    abandoned.mkdir(parents=True)
    with pytest.raises(OSError, match="disk gone"):
        as_data_path(Failing())
    assert _written(cache) == []  # neither the half-written folder nor the dead process's one is left
    table = as_data_path(ColorDataset())
    assert len(table.path.read_text().splitlines()) == 1 + 48 and len(_written(cache)) == 1


def test_a_hugging_face_dataset_dict_keeps_its_splits(cache):
    import datasets

    reviews = {
        "sentence": [f"a {'fine' if i % 2 else 'poor'} film {i}" for i in range(30)],
        "label": [i % 2 for i in range(30)],
    }
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    full = datasets.Dataset.from_dict(reviews, features=features)
    splits = datasets.DatasetDict({"train": full.select(range(20)), "validation": full.select(range(20, 26)),
                                   "test": full.select(range(26, 30))})  # fmt: skip
    with pytest.warns(UserWarning, match=r"split\(s\) test \(4 rows\) of the DatasetDict are not used.*"
                      r"graft\.evaluate\(run, data=ds\['test'\]\)"):  # fmt: skip
        report = graft.check(splits)
    assert report.modality == "text" and report.classes == ["neg", "pos"]
    assert sum(report.counts["train"].values()) == 20 and sum(report.counts["val"].values()) == 6
    assert graft.check(full, val_split=0.5).counts["val"] == {"neg": 8, "pos": 8}  # one Dataset: held out


def test_hugging_face_multi_label_and_regression_labels(cache):
    import datasets

    texts = [f"review {i} of a {'long' if i % 2 else 'short'} film" for i in range(24)]
    tags = datasets.Features({"text": datasets.Value("string"),
                              "labels": datasets.Sequence(datasets.ClassLabel(names=["long", "short", "good"]))})  # fmt: skip
    labels = [[i % 2] + ([2] if i % 3 == 0 else []) for i in range(24)]  # long or short, some also good
    multi = datasets.Dataset.from_dict({"text": texts, "labels": labels}, features=tags)
    report = graft.check(multi)
    assert report.task == "multi-label" and report.classes == ["good", "long", "short"]
    scores = datasets.Dataset.from_dict({"text": texts, "score": [float(i % 5) for i in range(24)]})
    report = graft.check(scores, label_column="score")  # whole-number floats: still regression, the type says
    assert report.task == "regression" and report.classes == ["score"]


def test_a_hugging_face_dataset_without_the_columns_is_one_line(cache):
    import datasets

    ds = datasets.Dataset.from_dict({"photo": ["a.png"], "y": [0]})
    with pytest.raises(GraftError, match=r"no image or text column \(looked for image, img, path, text, sentence; "
                                         r"its columns: photo, y\)") as err:  # fmt: skip
        graft.check(ds)
    assert "\n" not in str(err.value)
    with pytest.raises(GraftError, match="a streaming .* dataset has no length to read once and split"):
        graft.check(_hf_images().to_iterable_dataset())
    with pytest.raises(
        GraftError, match=r"no label column 'target' \(its columns: text, y\); name it with label_"
    ):
        graft.check(datasets.Dataset.from_dict({"text": ["a"], "y": [0]}), label_column="target")
    with pytest.raises(GraftError, match="label_columns: names 0/1 columns of a table"):
        graft.check(datasets.Dataset.from_dict({"text": ["a"], "y": [0]}), label_columns=["y", "z"])
    pixels = datasets.Dataset.from_dict({"image": [np.zeros((64, 64, 3), np.uint8)] * 4, "label": [0, 1] * 2})
    with pytest.raises(
        GraftError, match=r"row 0's path is a list \(\[\[\[0.*cast_column\(name, datasets.Image"
    ) as err:
        graft.check(pixels)  # an array column, not an Image feature: named, not dumped
    assert len(str(err.value)) < 250


def test_reading_a_dataset_draws_graft_progress_where_the_output_goes(cache, monkeypatch):
    """The read is one of graft/progress.py's steps: a bar on a terminal (also in a notebook, which a tty
    check on stderr missed), one line in a log when it is long, nothing when quiet."""
    import io

    from rich.console import Console

    from graft import progress
    from graft.data.materialize import DataOptions
    from graft.progress import progress_to

    terminal = io.StringIO()
    with progress_to(Console(file=terminal, force_terminal=True, width=160)):
        as_data_path(ColorDataset())
    assert "data   reading the dataset" in terminal.getvalue() and "48/48" in terminal.getvalue()
    monkeypatch.setattr(progress, "LONG_STEP_S", 0.0)  # every read counts as long
    piped = io.StringIO()
    with progress_to(Console(file=piped, width=160)):
        as_data_path(ColorDataset(seed=1))
    assert piped.getvalue().startswith("data   reading the dataset: 48 samples in ")
    assert "\x1b" not in piped.getvalue() and piped.getvalue().count("\n") == 1
    quiet = io.StringIO()
    with progress_to(Console(file=quiet, force_terminal=True)):
        as_data_path(ColorDataset(seed=2), DataOptions(quiet=True))
    assert quiet.getvalue() == ""


def test_train_checks_the_model_before_reading_a_dataset_and_reads_it_on_its_console(cache):
    import io

    from rich.console import Console

    with pytest.raises(GraftError, match="model: got a builtins.object"):
        graft.train(ColorDataset(), model=object())
    assert _written(cache) == []  # refused before the dataset was read and written
    terminal = io.StringIO()
    with pytest.raises(GraftError, match="no_such_model"):  # the read done, the run refused at its model name
        graft.train(
            ColorDataset(), model="no_such_model", console=Console(file=terminal, force_terminal=True)
        )
    assert "data   reading the dataset" in terminal.getvalue()  # the caller's console, not stderr
