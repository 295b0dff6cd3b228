"""Data discovery on hostile folders and names: symlinks that loop or leave the data folder are skipped with a
warning naming them (each folder is read once), and names graft writes (class names, labels, file paths in
split.csv and graft.json) either read back unchanged or are refused with a one-line error naming them."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import make_color_images
from graft.data.discover import discover
from graft.errors import GraftError
from graft.workflow.run_dir import write_split
from test_cli import assert_user_error, graft

PER_CLASS = 4  # 3 classes: 12 real images
REAL = 3 * PER_CLASS


# ---- symlinks: each maker plants links into the class-folder dataset `root` and returns the warnings due ----
def loop_to_the_root(root: Path, outside: Path) -> list[str]:
    (root / "blue" / "up").symlink_to("..")  # the fault-injection case: 12 images became 11,316 samples
    return [f"skipped {root / 'blue' / 'up'}: a symlink to {root.resolve()}, which contains it: a loop"]


def loop_to_its_own_folder(root: Path, outside: Path) -> list[str]:
    (root / "red" / "deep").mkdir()
    (root / "red" / "deep" / "again").symlink_to("../..")
    (root / "red" / "self").symlink_to(".")
    return [
        f"skipped {root / 'red' / 'deep' / 'again'}: a symlink to {root.resolve()}, which contains it: a loop",
        f"skipped {root / 'red' / 'self'}: a symlink to {(root / 'red').resolve()}, which contains it: a loop",
    ]


def folder_outside_the_root(root: Path, outside: Path) -> list[str]:
    (root / "red" / "more").symlink_to(outside / "red")
    return [
        f"skipped {root / 'red' / 'more'}: a symlink to {(outside / 'red').resolve()}, outside the data folder"
    ]


def class_folder_outside_the_root(root: Path, outside: Path) -> list[str]:
    (root / "yellow").symlink_to(outside / "red")
    return [f"skipped {root / 'yellow'}: a symlink to {(outside / 'red').resolve()}, outside the data folder"]


def test_a_class_folder_linked_from_outside_is_an_error_not_a_dropped_class(tmp_path: Path):
    root = make_color_images(tmp_path / "data", per_class=PER_CLASS)
    outside = make_color_images(tmp_path / "outside", per_class=2, seed=3)
    class_folder_outside_the_root(root, outside)
    with pytest.raises(GraftError, match=r"class folder .*yellow is a symlink to .*outside the data folder"):
        discover(root)


def parent_of_the_root(root: Path, outside: Path) -> list[str]:
    (root / "green" / "everything").symlink_to("../..")  # leaves the root: it would read `outside` too
    return [
        f"skipped {root / 'green' / 'everything'}: a symlink to {root.parent.resolve()}, outside the data folder"
    ]


def into_another_class(root: Path, outside: Path) -> list[str]:
    (root / "green" / "reds").symlink_to("../red")  # the same images under a second label
    (root / "crimson").symlink_to("red")
    return [
        f"skipped {root / 'crimson'}: a symlink to {(root / 'red').resolve()}, the class folder {root / 'red'}",
        f"skipped {root / 'green' / 'reds'}: a symlink to {(root / 'red').resolve()}, the class folder",
    ]


def image_file_links(root: Path, outside: Path) -> list[str]:
    (root / ".store").mkdir()  # hidden: read only through the links
    shutil.copy(outside / "red" / "000.png", root / ".store" / "red.png")
    shutil.copy(outside / "blue" / "000.png", root / ".store" / "blue.png")
    (root / "red" / "linked.png").symlink_to("../.store/red.png")
    (root / "blue" / "linked.png").symlink_to(root / ".store" / "blue.png")
    # (one file linked under two classes is one multi-label sample: tests/test_tasks_training.py)
    return []


@pytest.mark.parametrize(
    ("plant", "samples"),
    [
        (loop_to_the_root, REAL),
        (loop_to_its_own_folder, REAL),
        (folder_outside_the_root, REAL),
        (parent_of_the_root, REAL),
        (into_another_class, REAL),
        (image_file_links, REAL + 2),  # symlinked files inside the root count
    ],
)
def test_symlinked_folders_are_read_once_and_inside_the_root(tmp_path: Path, plant, samples: int):
    root = make_color_images(tmp_path / "data", per_class=PER_CLASS)
    outside = make_color_images(tmp_path / "outside", per_class=2, seed=3)
    due = plant(root, outside)
    spec = discover(root)
    assert spec.classes == ["blue", "green", "red"]
    assert len(spec.train) + len(spec.val) == samples
    assert len(spec.warnings) == len(due), spec.warnings
    for expected, warning in zip(sorted(due), sorted(spec.warnings)):
        assert warning.startswith(expected) and "\n" not in warning, warning
    again = discover(root)  # deterministic: the same samples and warnings every time
    assert (again.train, again.val, again.warnings) == (spec.train, spec.val, spec.warnings)


def test_a_folder_linked_twice_inside_the_root_is_read_once(tmp_path: Path):
    """train/ + val/ layout: a link to a folder beside train/ is followed, a second link to it is not."""
    make_color_images(tmp_path / "data" / "train", per_class=PER_CLASS)
    make_color_images(tmp_path / "data" / "val", per_class=2, seed=1)
    make_color_images(tmp_path / "data" / "pool", per_class=3, seed=2)
    root = tmp_path / "data"
    (root / "train" / "blue" / "more").symlink_to("../../pool/red")  # read: blue comes first
    (root / "train" / "red" / "more").symlink_to(root / "pool" / "red")  # read already, as blue/more
    (root / "val" / "green" / "train").symlink_to("../../train/green")  # train images in val
    spec = discover(root)
    assert spec.counts("train") == {"blue": 4 + 3, "green": 4, "red": 4}
    assert spec.counts("val") == {"blue": 2, "green": 2, "red": 2}
    assert sorted(spec.warnings) == [
        f"skipped {root / 'train' / 'red' / 'more'}: a symlink to {(root / 'pool' / 'red').resolve()}, "
        f"already read as {root / 'train' / 'blue' / 'more'}",
        f"skipped {root / 'val' / 'green' / 'train'}: a symlink to {(root / 'train' / 'green').resolve()}, "
        f"the class folder {root / 'train' / 'green'}, which is read on its own",
    ]


def test_only_outside_links_left_is_an_error_that_says_so(tmp_path: Path):
    root = tmp_path / "data"
    root.mkdir()
    outside = make_color_images(tmp_path / "outside", per_class=2)
    for name in ("blue", "red"):
        (root / name).symlink_to(outside / name)
    with pytest.raises(GraftError, match=r"class folder .*blue is a symlink to .*outside the data folder"):
        discover(root)


def test_graft_check_on_a_symlink_loop_warns_and_passes(tmp_path: Path):
    root = make_color_images(tmp_path / "data", per_class=PER_CLASS)
    (root / "blue" / "up").symlink_to("..")
    result = graft("check", root)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert "check 9 train / 3 val" in out  # 12 images, 1 of each class held out
    assert (
        f"warning skipped {root / 'blue' / 'up'}: a symlink to {root.resolve()}, which contains it: a loop"
        in out
    )
    assert "ok: graft train can use this data" in out
    report = json.loads(graft("check", root, "--json").stdout)
    assert sum(map(sum, (c.values() for c in report["counts"].values()))) == REAL


# ---- names with control characters: refused with the name as a repr, one line ----
CONTROL = ["\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\u2028"]


@pytest.mark.parametrize("char", CONTROL)
def test_class_folder_with_a_control_character_is_refused(tmp_path: Path, char: str):
    root = make_color_images(tmp_path / "data", per_class=2)
    (root / "blue").rename(root / f"blue{char}sky")
    with pytest.raises(GraftError) as err:
        discover(root)
    message = str(err.value)
    assert "\n" not in message and "\r" not in message
    assert (
        f"the folder name {f'blue{char}sky'!r} (in {root}) contains the control character {char!r}" in message
    )
    assert "rename the folder" in message


def test_image_file_with_a_newline_is_refused(tmp_path: Path):
    root = make_color_images(tmp_path / "data", per_class=2)
    (root / "red" / "001.png").rename(root / "red" / "a\nb.png")
    with pytest.raises(
        GraftError, match=r"the file name 'a\\nb.png' \(in .*red\) contains the control character '\\n'"
    ):
        discover(root)


def test_graft_check_on_a_newline_class_folder_is_a_one_line_error(tmp_path: Path):
    root = make_color_images(tmp_path / "data", per_class=2)
    (root / "red").rename(root / "red\nline")
    assert_user_error(graft("check", root), "'red\\nline'", "'\\n'", "rename the folder")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            ["imgs/red/000.png", "red\nline"],
            r"i\.csv:2: the label 'red\\nline' contains the control character '\\n'",
        ),
        (
            ["imgs/red/000.png", "red\tline"],
            r"i\.csv:2: the label 'red\\tline' contains the control character '\\t'",
        ),
        (
            ["imgs/red/0\n00.png", "red"],
            r"i\.csv:2: the path 'imgs/red/0\\n00.png' contains the control character",
        ),
        (
            ["imgs/red/0\r00.png", "red"],
            r"i\.csv:2: the path 'imgs/red/0\\r00.png' contains the control character",
        ),
    ],
)
def test_image_csv_with_a_control_character_is_refused(tmp_path: Path, row: list[str], message: str):
    make_color_images(tmp_path / "imgs", per_class=2)
    with (tmp_path / "i.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["path", "label"], row, ["imgs/blue/000.png", "blue"]])
    with pytest.raises(GraftError, match=message):
        discover(tmp_path / "i.csv")


def test_image_csv_line_numbers_count_quoted_newlines(tmp_path: Path):
    make_color_images(tmp_path / "imgs", per_class=2)
    (tmp_path / "i.csv").write_text(
        'path,label,note\nimgs/red/000.png,red,"two\nlines"\nimgs/red/000.png,red,x\n'
    )
    with pytest.raises(GraftError, match=r"i\.csv:4: imgs/red/000\.png is listed a second time"):
        discover(tmp_path / "i.csv")


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        ("t.csv", "csv", r"t\.csv:3: the label 'red\\nline' contains the control character '\\n'"),
        ("t.tsv", "tsv", r"t\.tsv:3: the label 'red\\nline' contains the control character '\\n'"),
        ("t.jsonl", "jsonl", r"t\.jsonl:2: the label 'red\\nline' contains the control character '\\n'"),
    ],
)
def test_text_label_with_a_newline_is_refused(tmp_path: Path, name: str, write: str, message: str):
    """Was read as 'redline' (image CSVs) or kept, to be written where it does not read back."""
    rows = [("a good film", "blue"), ("a bad film", "red\nline"), ("fine", "blue"), ("meh", "red")]
    path = tmp_path / name
    if write == "jsonl":
        path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    else:
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f, delimiter="\t" if write == "tsv" else ",").writerows([("text", "label"), *rows])
    with pytest.raises(GraftError, match=message) as err:
        discover(path, modality="text")
    assert "\n" not in str(err.value) and "change the label" in str(err.value)


# ---- what graft writes reads back: split.csv as workflow/run_dir.write_split writes it ----
TEXTS = [
    "first line\nsecond line",
    "windows\r\nline end",
    "old mac\rline end",
    'a "quoted", comma\'d text',
    "NEL\x85 and LS\u2028 inside",
    "tab\tinside",
    "  outer spaces are stripped  ",
    "plain",
]


def test_texts_with_newlines_round_trip_through_split_csv(tmp_path: Path):
    path = tmp_path / "t.csv"
    rows = [(text, ("pos", "neg")[i % 2]) for i, text in enumerate(TEXTS * 2)]
    rows = [(f"{text} #{i}", label) for i, (text, label) in enumerate(rows)]
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    spec = discover(path, modality="text", val_split=0.25)
    assert {(s.text, spec.classes[s.label]) for s in spec.train + spec.val} == {
        (t.strip(), y) for t, y in rows
    }  # a cell is stripped of outer spaces, nothing else
    write_split(spec, tmp_path / "split.csv")
    again = discover(tmp_path / "split.csv", modality="text")
    assert again.classes == spec.classes
    assert (again.train, again.val) == (spec.train, spec.val)


@pytest.mark.parametrize("name", ["a,b", 'say "hi"', "café", "two words", "ünï ☃"])
def test_legal_odd_class_names_round_trip_through_split_csv(tmp_path: Path, name: str):
    """What resume does: discover(split.csv) must give the same classes and samples as the folders did."""
    root = make_color_images(tmp_path / "data", per_class=3)
    (root / "blue").rename(root / name)
    spec = discover(root)
    write_split(spec, tmp_path / "split.csv")
    again = discover(tmp_path / "split.csv")
    assert again.classes == spec.classes and name in again.classes
    resolved = [[(s.path.resolve(), s.label) for s in part] for part in (spec.train, spec.val)]
    assert [[(s.path, s.label) for s in part] for part in (again.train, again.val)] == resolved


def test_csv_may_point_anywhere(tmp_path: Path):
    """Files a CSV names are used where they are (outside its folder, through linked folders)."""
    images = make_color_images(tmp_path / "elsewhere" / "imgs", per_class=2)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "linked").symlink_to(images)
    lines = ["path,label"] + [f"{where}/{c}/00{i}.png,{c}" for c in ("blue", "red") for i in range(2)
                              for where in ("../elsewhere/imgs",)]  # fmt: skip
    lines += [f"linked/green/00{i}.png,green" for i in range(2)]
    (tmp_path / "data" / "d.csv").write_text("\n".join(lines) + "\n")
    spec = discover(tmp_path / "data" / "d.csv")
    assert spec.counts("train")["green"] + spec.counts("val")["green"] == 2 and not spec.warnings
    assert os.path.commonpath([str(s.path) for s in spec.train + spec.val]) == str(images.resolve())


def test_graft_train_header_names_the_skipped_link(tmp_path: Path):
    from test_cli import FAST

    root = make_color_images(tmp_path / "data", per_class=PER_CLASS)
    (root / "blue" / "up").symlink_to("..")
    result = graft("train", root, *FAST, "--epochs", "1", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert f"warning skipped {root / 'blue' / 'up'}: a symlink to {root.resolve()}, which contains it" in out
    assert "9 train / 3 val" in out
    with (tmp_path / "run" / "split.csv").open(newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == REAL
