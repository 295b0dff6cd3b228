from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from conftest import make_color_images
from graft.data.discover import Sample, discover, stratified_split
from graft.errors import GraftError


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path)


def test_class_folders_are_split_stratified_and_seeded(tmp_path: Path):
    root = make_color_images(tmp_path / "d", per_class=10)
    spec = discover(root, val_split=0.2, seed=1)
    assert spec.classes == ["blue", "green", "red"]
    assert spec.counts("val") == {"blue": 2, "green": 2, "red": 2}
    assert spec.counts("train") == {"blue": 8, "green": 8, "red": 8}
    assert not {s.path for s in spec.train} & {s.path for s in spec.val}
    again = discover(root, val_split=0.2, seed=1)
    assert [s.path for s in again.val] == [s.path for s in spec.val]
    other = discover(root, val_split=0.2, seed=2)
    assert [s.path for s in other.val] != [s.path for s in spec.val]


def test_train_and_val_folders(tmp_path: Path):
    make_color_images(tmp_path / "train", per_class=4)
    make_color_images(tmp_path / "val", per_class=2)
    spec = discover(tmp_path)
    assert len(spec.train) == 12 and len(spec.val) == 6
    assert "val/" in spec.description


def test_val_classes_missing_from_train_are_an_error(tmp_path: Path):
    make_color_images(tmp_path / "train", per_class=2)
    _img(tmp_path / "val" / "purple" / "1.png")
    with pytest.raises(GraftError, match="purple"):
        discover(tmp_path)


def test_csv_with_relative_paths_and_optional_split(tmp_path: Path):
    make_color_images(tmp_path / "imgs", per_class=3)
    rows = ["path,label"] + [f"imgs/{c}/{i:03d}.png,{c}" for c in ("red", "blue") for i in range(3)]
    (tmp_path / "data.csv").write_text("\n".join(rows))
    spec = discover(tmp_path / "data.csv", val_split=0.34)
    assert spec.classes == ["blue", "red"] and len(spec.train) + len(spec.val) == 6
    rows = ["Path,Label,split"] + [
        f"imgs/{c}/{i:03d}.png,{c},{'val' if i == 0 else 'train'}" for c in ("red", "blue") for i in range(3)
    ]
    (tmp_path / "split.csv").write_text("\n".join(rows))
    spec = discover(tmp_path / "split.csv")
    assert len(spec.val) == 2 and all(s.path.name == "000.png" for s in spec.val)


@pytest.mark.parametrize(
    "content, match",
    [
        ("file,label\na.png,x\n", "missing path.*found: file, label"),
        ("path,label\nnope.png,x\nnope2.png,y\n", "2 listed file.*nope.png"),
        ("path,label\n", "no rows"),
        ("path,label\n,x\n", ":2: empty path"),
    ],
)
def test_bad_csv(tmp_path: Path, content: str, match: str):
    (tmp_path / "d.csv").write_text(content)
    with pytest.raises(GraftError, match=match):
        discover(tmp_path / "d.csv")


def test_non_utf8_csv(tmp_path: Path):
    (tmp_path / "d.csv").write_bytes("path,label\ncafé.png,x\n".encode("latin-1"))
    with pytest.raises(GraftError, match="not UTF-8"):
        discover(tmp_path / "d.csv")


def test_missing_empty_and_single_class(tmp_path: Path):
    with pytest.raises(GraftError, match="data not found"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GraftError, match="no class sub-folders"):
        discover(tmp_path / "empty")
    (tmp_path / "one" / "cat").mkdir(parents=True)
    _img(tmp_path / "one" / "cat" / "a.png")
    with pytest.raises(GraftError, match="at least 2"):
        discover(tmp_path / "one")
    (tmp_path / "one" / "dog").mkdir()
    with pytest.raises(GraftError, match="class folder .*dog has no images"):
        discover(tmp_path / "one")


def test_loose_images_are_reported(tmp_path: Path):
    root = make_color_images(tmp_path / "d", per_class=3)
    _img(root / "stray.png")
    assert any("not in a class folder" in w for w in discover(root).warnings)


def test_stratified_split_edge_cases():
    samples = [Sample(Path(f"{c}{i}"), c) for c in range(3) for i in range([1, 2, 7][c])]
    train, val = stratified_split(samples, 0.2, seed=0)
    assert Counter(s.label for s in val) == {1: 1, 2: 1}  # singleton stays in train; >=1 val otherwise
    assert len(train) + len(val) == len(samples)


@pytest.mark.parametrize(
    "train_name, val_name", [("Train", "Val"), ("training", "validation"), ("TRAIN", "VALID")]
)
def test_split_folder_names_are_case_insensitive(tmp_path: Path, train_name: str, val_name: str):
    make_color_images(tmp_path / train_name, per_class=3)
    make_color_images(tmp_path / val_name, per_class=1)
    spec = discover(tmp_path)
    assert spec.classes == ["blue", "green", "red"] and len(spec.val) == 3


def test_val_folder_without_train_folder_is_an_error(tmp_path: Path):
    make_color_images(tmp_path / "cats_and_dogs", per_class=2)
    make_color_images(tmp_path / "val", per_class=1)
    with pytest.raises(GraftError, match="val/ folder but no train/"):
        discover(tmp_path)


def test_test_folder_is_left_out_with_a_warning(tmp_path: Path):
    make_color_images(tmp_path / "train", per_class=3)
    make_color_images(tmp_path / "test", per_class=1)
    spec = discover(tmp_path)
    assert len(spec.train) + len(spec.val) == 9 and any("test" in w for w in spec.warnings)


def test_macos_junk_and_hidden_files_are_skipped(tmp_path: Path):
    root = make_color_images(tmp_path / "d", per_class=3)
    (root / "red" / "._000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    _img(root / "__MACOSX" / "red" / "x.png")
    _img(root / ".hidden" / "x.png")
    spec = discover(root, val_split=0.34)
    assert spec.classes == ["blue", "green", "red"] and len(spec.train) + len(spec.val) == 9


def test_folder_of_class_folders_one_level_too_high_gets_a_hint(tmp_path: Path):
    make_color_images(tmp_path / "animals", per_class=2)
    with pytest.raises(GraftError, match=r"animals/ has sub-folders \(blue, green, red\): did you mean"):
        discover(tmp_path)


def test_split_keeps_a_training_image_in_every_class(tmp_path: Path):
    root = make_color_images(tmp_path / "d", per_class=2)
    spec = discover(root, val_split=0.8)
    assert spec.counts("train") == spec.counts("val") == {"blue": 1, "green": 1, "red": 1}


def test_csv_duplicates_and_overlapping_val_are_errors(tmp_path: Path):
    make_color_images(tmp_path / "imgs", per_class=2)
    (tmp_path / "dup.csv").write_text("path,label\nimgs/red/000.png,red\nimgs/red/000.png,red\n")
    with pytest.raises(GraftError, match="dup.csv:3: imgs/red/000.png is listed a second time"):
        discover(tmp_path / "dup.csv")
    (tmp_path / "clash.csv").write_text("path,label\nimgs/red/000.png,red\nimgs/red/000.png,blue\n")
    with pytest.raises(GraftError, match="another label"):
        discover(tmp_path / "clash.csv")
    with pytest.raises(GraftError, match="both training and validation"):
        discover(tmp_path / "imgs", val=tmp_path / "imgs")


def test_symlinked_folders_leading_out_of_the_data_root_are_skipped_and_named(tmp_path: Path):
    root = make_color_images(tmp_path / "d", per_class=2)
    make_color_images(tmp_path / "extra", per_class=2, seed=5)
    (root / "red" / "more").symlink_to(tmp_path / "extra" / "red")  # only a CSV may point outside DATA
    spec = discover(root, val_split=0.25)
    assert spec.counts("train")["red"] + spec.counts("val")["red"] == 2
    assert any("red/more" in w and "outside the data folder" in w for w in spec.warnings)
