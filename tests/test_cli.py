"""The `graft` command line: exit codes, output, files on disk.

Commands run through the console script's own `main()` in this process (see `graft` below); the tests of
signals, injected faults, process death and the installed entry point start real processes."""

import contextlib
import io
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from conftest import make_color_images

GRAFT = str(Path(sys.executable).parent / "graft")
FAST = [
    "--model",
    "test_resnet",
    "--img-size",
    "32",
    "--epochs",
    "3",
    "--batch-size",
    "8",
    "--lr",
    "0.01",
    "--set",
    "model.pretrained=false",
    "--set",
    "optim.warmup_epochs=0",
    "--set",
    "data.num_workers=0",
]


def graft(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`graft ARGS` as the console script runs it (`graft.cli.app:main`: argv, exit code, stdout and
    stderr apart), in this process: a fresh process would spend ~8 s importing torch and timm each time.
    An exception escaping main() is what a subprocess would print: its traceback, exit code 1."""
    from graft.cli.app import main

    argv = ["graft", *map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "COLUMNS")}
    os.environ.update({"HF_HUB_OFFLINE": "1", "COLUMNS": "200"})  # rich wraps help at the terminal width
    here, saved_argv = os.getcwd(), sys.argv
    code = 0
    try:
        sys.argv = argv
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
                if isinstance(done.code, str):
                    err.write(done.code + "\n")
            except Exception:  # noqa: BLE001 - a bug: the traceback a process would print
                err.write(traceback.format_exc())
                code = 1
    finally:
        sys.argv = saved_argv
        os.chdir(here)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_train_then_predict_on_a_folder(tmp_path: Path):
    data = make_color_images(tmp_path / "colors")
    result = graft("train", data, *FAST, "--out", tmp_path / "run", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "epoch 3/3" in result.stdout and "bundle" in result.stdout and "graft predict" in result.stdout
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()

    result = graft(
        "predict", tmp_path / "run", data / "red" / "000.png", data / "blue", "--top-k", "2", "--json"
    )
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert len(predictions) == 1 + 16
    assert predictions[0]["label"] == "red" and len(predictions[0]["top_k"]) == 2
    assert sum(p["label"] == "blue" for p in predictions[1:]) >= 15

    table = graft("predict", tmp_path / "run" / "model", data / "green" / "001.png")
    assert table.returncode == 0 and "green" in table.stdout


def test_train_on_a_csv_with_yaml_config(tmp_path: Path):
    make_color_images(tmp_path / "imgs", per_class=10)
    rows = ["path,label"] + [f"imgs/{c}/{i:03d}.png,{c}" for c in ("red", "green", "blue") for i in range(10)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "cfg.yaml").write_text("train:\n  epochs: 1\nlog:\n  sinks: [csv]\n")
    result = graft(
        "train",
        "labels.csv",
        *FAST,
        "--config",
        "cfg.yaml",
        "--set",
        "train.epochs=2",
        "--out",
        "r",
        "-q",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "CSV labels.csv" in result.stdout and "epoch 2/2" in result.stdout  # --set beats the YAML
    assert not (tmp_path / "r" / "tb").exists()  # sinks from the YAML


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["train", "missing_folder"], ["data not found: missing_folder"]),
        (
            ["train", "DATA", "--set", "optim.lrr=1"],
            ["unknown config key 'optim.lrr'", "did you mean: optim.lr"],
        ),
        (["train", "DATA", "--epochs", "-1"], ["train.epochs"]),  # 0 is valid: the solved head alone
        (["train", "DATA", "--model", "resnet19", "--out", "OUT"], ["unknown model 'resnet19'", "resnet18"]),
        (["predict", "OUT", "x.png"], ["not a graft bundle"]),
        (["train", "DATA", "--config", "nope.yaml"], ["config file not found: nope.yaml"]),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], fragments: list[str]):
    data = make_color_images(tmp_path / "d", per_class=3)
    args = [str(data) if a == "DATA" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    assert_user_error(graft(*args, cwd=tmp_path), *fragments)
    assert not (tmp_path / "out").exists()


def test_existing_run_is_left_intact(tmp_path: Path):
    data = make_color_images(tmp_path / "colors", per_class=4)
    assert graft("train", data, *FAST, "--epochs", "1", "--out", tmp_path / "run", "-q").returncode == 0
    files = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert_user_error(graft("train", data, *FAST, "--out", tmp_path / "run"), "already holds a run")
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == files


def test_help_and_version():
    top = graft("--help")
    assert top.returncode == 0
    for command in ("train", "predict", "models", "config", "demo"):
        assert command in top.stdout
    train = graft("train", "--help")
    assert train.returncode == 0 and "--val-split" in train.stdout and "(default 10)" in train.stdout
    assert graft("--version").stdout.startswith("graft ")


def test_models_and_config_commands():
    models = graft("models", "efficientnet_lite*")
    assert models.returncode == 0 and "efficientnet_lite0" in models.stdout and "offline" in models.stdout
    config = graft("config", "--set", "optim.lr=0.25")
    assert config.returncode == 0 and "lr: 0.25" in config.stdout


def test_demo_refuses_an_existing_run_before_writing_anything(tmp_path: Path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.yaml").write_text("x: 1\n")
    assert_user_error(graft("demo", "--out", tmp_path / "old"), "already holds a run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # no digits folder written either


def test_offline_listing_finds_cached_hub_weights(tmp_path: Path):
    """A model whose weights sit in the Hugging Face cache is listed as offline-ready."""
    repo = tmp_path / "hub" / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "model.safetensors").write_bytes(b"")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "COLUMNS": "200"}
    listing = subprocess.run([GRAFT, "models", "--offline"], capture_output=True, text=True, env=env)
    assert listing.returncode == 0
    names = [line.split("│")[1].strip() for line in listing.stdout.splitlines() if line.startswith("│")]
    # efficientnet_lite0 and minilm come from installed offline packages; resnet18 from the cache.
    assert names == ["efficientnet_lite0", "minilm", "resnet18"]
