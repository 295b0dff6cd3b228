"""Conventions shared with the ecosystem: timm's flag names for the optimizer and schedule (--opt, --sched,
--weight-decay, --warmup-epochs, --smoothing), every timm optimizer, image CSVs with their own column
names (--path-column, --label-column), and help text without "(default None)" or "<bool>"."""

import copy
from pathlib import Path

import pytest
import torch
import yaml

import graft
from conftest import TINY, make_color_images
from graft.cli.options import resolve
from graft.config import resolve_config
from graft.errors import GraftError
from graft.monitoring.console import plural
from graft.runs.store import CheckpointStore
from graft.workflow.resume import resume_run
from test_cli import FAST, assert_user_error
from test_cli import graft as run_graft

TIMM_FLAGS = ["--opt", "sgd", "--sched", "cosine", "--weight-decay", "0.01", "--warmup-epochs", "0",
              "--smoothing", "0.1"]  # fmt: skip


def test_timm_named_flags_reach_the_config():
    cfg = resolve(None, [], opt="lamb", sched="constant", weight_decay=0.05, warmup_epochs=1.5, smoothing=0.2,
                  path_column="file", label_column="category")  # fmt: skip
    wanted = {"name": "lamb", "scheduler": "constant", "weight_decay": 0.05, "warmup_epochs": 1.5,
              "label_smoothing": 0.2}  # fmt: skip
    assert {key: getattr(cfg.optim, key) for key in wanted} == wanted
    assert (cfg.data.path_column, cfg.data.label_column) == ("file", "category")
    # the Python API's keyword arguments are the same names (graft.config.ALIASES)
    api = resolve_config(overrides={"opt": "SGD", "sched": "cosine", "weight_decay": 0.0, "smoothing": 0.1})
    assert (api.optim.name, api.optim.weight_decay, api.optim.label_smoothing) == ("sgd", 0.0, 0.1)
    # --set still wins over a flag
    assert resolve(None, ["optim.name=lion"], opt="lamb").optim.name == "lion"


def test_a_schedule_graft_does_not_have_is_one_clear_error():
    with pytest.raises(GraftError, match=r"optim.scheduler: must be cosine or constant.*'step'"):
        resolve_config(overrides={"sched": "step"})


def test_tiny_train_with_the_timm_flags(tmp_path: Path):
    data = make_color_images(tmp_path / "colors", per_class=6)
    result = run_graft("train", data, *FAST, "--epochs", "1", *TIMM_FLAGS, "--out", tmp_path / "run", "-q")
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["optim"]
    wanted = {"name": "sgd", "scheduler": "cosine", "weight_decay": 0.01, "warmup_epochs": 0}
    assert {key: saved[key] for key in wanted} == wanted
    assert saved["label_smoothing"] == 0.1


def test_a_timm_optimizer_beyond_adamw_and_sgd_trains(tmp_path: Path):
    data = make_color_images(tmp_path / "colors", per_class=6)
    result = run_graft(
        "train", data, *FAST, "--epochs", "1", "--opt", "lamb", "--out", tmp_path / "run", "-q"
    )
    assert result.returncode == 0, result.stderr
    assert "lamb" in result.stdout  # the run's header names the optimizer
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["optim"]["name"] == "lamb"


def test_an_optimizer_typo_lists_the_valid_names_in_one_line(tmp_path: Path):
    data = make_color_images(tmp_path / "colors", per_class=3)
    result = run_graft("train", data, *FAST, "--opt", "lambb", "--out", tmp_path / "run")
    assert_user_error(result, "unknown optimizer 'lambb'", "did you mean: lamb", "adamw, ", "lion", "sgd")
    assert not (tmp_path / "run").exists()  # refused before anything was written
    from graft.training.optim import check_optimizer_name

    # timm has it, graft's loop cannot drive it (a plain backward, no second-order gradients)
    with pytest.raises(GraftError, match="'adahessian' is not supported"):
        check_optimizer_name("adahessian")


@pytest.mark.parametrize("name", ["sgd", "lamb", "lion", "radam", "lookahead_adamw"])
def test_timm_optimizers_keep_graft_param_groups_and_resume_exactly(name: str):
    """The optimizer over graft's explicit groups (own LR, no weight decay on norms and biases), a group
    added at an unfreeze, and its state dict loaded into the rebuilt optimizer continues bitwise."""
    from graft.config import OptimConfig
    from graft.training.optim import create_optimizer

    def build() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
        w0, b0, nw, nb, w1, b1 = net.parameters()
        optimizer = create_optimizer(OptimConfig(name=name, weight_decay=0.05), [
            {"params": [w1], "lr": 0.01, "base_lr": 0.01, "weight_decay": 0.05},
            {"params": [b1], "lr": 0.01, "base_lr": 0.01, "weight_decay": 0.0},
        ])  # fmt: skip
        optimizer.add_param_group(
            {"params": [w0], "lr": 0.005, "base_lr": 0.005, "weight_decay": 0.05, "start_step": 1}
        )
        optimizer.add_param_group(
            {"params": [b0, nw, nb], "lr": 0.005, "base_lr": 0.005, "weight_decay": 0.0}
        )
        return net, optimizer

    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))

    def step(net, optimizer):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()

    net, optimizer = build()
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0, 0.05, 0.0]
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.01, 0.005, 0.005]
    for _ in range(3):
        step(net, optimizer)
    saved_net = {k: v.clone() for k, v in net.state_dict().items()}
    saved = copy.deepcopy(optimizer.state_dict())  # as a checkpoint holds it, not the live tensors
    step(net, optimizer)
    again, rebuilt = build()
    again.load_state_dict(saved_net)
    rebuilt.load_state_dict(saved)
    step(again, rebuilt)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters()))


def test_a_lamb_run_stopped_mid_epoch_resumes_into_the_uninterrupted_run(tmp_path: Path, monkeypatch):
    import graft.training.loop as loop

    data = make_color_images(tmp_path / "colors", per_class=8)
    run = {**TINY, "opt": "lamb", "weight_decay": 0.05, "smoothing": 0.1, "sched": "cosine",
           "strategy": "gradual", "unfreeze_at": [1], "save_every": 2, "epochs": 2}  # fmt: skip
    reference = graft.train(data, out=tmp_path / "reference", **run)
    seen = {"n": 0}

    def stop_at_step_5(name: str) -> None:  # a hard stop after the step-4 checkpoint, mid-epoch
        seen["n"] += name == "step"
        if name == "step" and seen["n"] == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "fault", stop_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        graft.train(data, out=tmp_path / "stopped", **run)
    monkeypatch.undo()
    resumed = resume_run(tmp_path / "stopped")
    assert resumed.config.optim.name == "lamb"
    mine, theirs = (CheckpointStore(p / "checkpoints") for p in (resumed.path, reference.path))
    a, b = mine.load(mine.read_index().last).model, theirs.load(theirs.read_index().last).model
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b)


def test_an_image_csv_with_its_own_column_names(tmp_path: Path):
    make_color_images(tmp_path / "imgs", per_class=6)
    rows = ["file,category"] + [
        f"imgs/{c}/{i:03d}.png,{c}" for c in ("red", "green", "blue") for i in range(6)
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    columns = ["--path-column", "file", "--label-column", "category"]
    result = run_graft(
        "train", "labels.csv", *FAST, "--epochs", "1", *columns, "--out", "r", "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "CSV labels.csv" in result.stdout
    split = (tmp_path / "r" / "split.csv").read_text().splitlines()
    assert split[0] == "path,label,split" and len(split) == 1 + 18  # split.csv keeps graft's own columns
    checked = run_graft("check", "labels.csv", *columns, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    evaluated = run_graft("eval", "r", "--data", "labels.csv", cwd=tmp_path)  # eval reads it as the run did
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    # without the flags: one line that names the columns found and the flags
    assert_user_error(run_graft("check", "labels.csv", cwd=tmp_path), "needs columns path,label", "found: file, category",
                      "--path-column/--label-column")  # fmt: skip


def test_help_has_no_none_default_and_no_bool_metavar():
    for args in (["--help"], ["train", "--help"], ["check", "--help"], ["lr-find", "--help"], ["resume", "--help"],
                 ["predict", "--help"], ["eval", "--help"], ["config", "--help"], ["train"]):  # fmt: skip
        result = run_graft(*args)
        assert result.returncode in (0, 2), result.stderr
        text = result.stdout + result.stderr
        assert "(default None)" not in text and "<bool>" not in text, args
    train = run_graft("train", "--help").stdout
    for flag in ("--opt", "--sched", "--weight-decay", "--warmup-epochs", "--smoothing", "--path-column"):
        assert flag in train
    assert "(default efficientnet_lite0 for images, minilm for texts)" in train
    assert "(default adamw)" in train and "(default 0.01)" in train  # from the config, not typed twice
    assert "image and text models" in run_graft("--help").stdout


def test_plural():
    assert [plural(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert plural(1, "class") == "1 class" and plural(3, "class") == "3 classes"
    assert plural(1, "training image") == "1 training image" and plural(5, "batch") == "5 batches"
