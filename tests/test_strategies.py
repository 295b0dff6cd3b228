"""Strategies as pure functions: stage plans, layer groups, the advisor's table, k-NN."""

import pytest
import torch
from torch import nn

from graft.data.discover import DataSpec
from graft.data.text_tables import TextSample
from graft.models.registry import create_model
from graft.strategies.advisor import LITTLE_DATA, SIMILAR, advise, knn_accuracy, recommend
from graft.strategies.groups import layer_groups
from graft.strategies.stages import Staging, plan_stages, stage_at
from graft.training.optim import create_optimizer


def test_linear_probe_full_and_discriminative_plans():
    (probe,) = plan_stages("linear-probe", 5, epochs=3)
    assert probe.trainable == (4,) and probe.lr_scales == (1.0,)
    (full,) = plan_stages("full", 5, epochs=3)
    assert full.trainable == (0, 1, 2, 3, 4) and set(full.lr_scales) == {1.0}
    (disc,) = plan_stages("discriminative", 5, epochs=3, layer_decay=0.5)
    assert disc.lr_scales == (0.0625, 0.125, 0.25, 0.5, 1.0)  # halves per group toward the input


def test_gradual_unfreezes_from_the_top_each_group_at_its_own_lr():
    stages = plan_stages("gradual", 5, epochs=4, layer_decay=0.5, unfreeze_groups=1)
    assert [s.start_epoch for s in stages] == [0, 1, 2, 3]
    assert [s.trainable for s in stages] == [(4,), (3, 4), (2, 3, 4), (1, 2, 3, 4)]
    assert stages[-1].lr_scales == (0.125, 0.25, 0.5, 1.0)
    assert stage_at(stages, 2).index == 2 and stage_at(stages, 9).index == 3


def test_gradual_schedules():
    every_two = plan_stages("gradual", 6, epochs=7, unfreeze_every=2, unfreeze_groups=1)
    assert [s.start_epoch for s in every_two] == [0, 2, 4, 6]
    spread = plan_stages("gradual", 9, epochs=5)  # default: 8 backbone groups over 4 unfreezes = 2 each
    assert [len(s.trainable) for s in spread] == [1, 3, 5, 7, 9]
    at = plan_stages("gradual", 6, epochs=10, unfreeze_at=[3, 5], unfreeze_groups=2)
    assert [(s.start_epoch, s.trainable) for s in at] == [(0, (5,)), (3, (3, 4, 5)), (5, (1, 2, 3, 4, 5))]
    assert len(plan_stages("gradual", 3, epochs=10, unfreeze_groups=1)) == 3  # stops when all are unfrozen
    assert len(plan_stages("gradual", 6, epochs=1)) == 1  # no epoch left to unfreeze in


def test_unknown_strategy():
    with pytest.raises(ValueError, match="choose from linear-probe, full"):
        plan_stages("partial", 3, 3)


@pytest.mark.parametrize(
    "name, first, count",
    [
        ("test_resnet", "conv1+bn1", 6),
        ("efficientnet_lite0", "conv_stem+bn1", 9),
        ("tv:resnet18", "conv1", 8),
        ("tv:mobilenet_v3_small", "features.0", 15),
    ],
)
def test_layer_groups_cover_every_parameter_once_head_last(name: str, first: str, count: int):
    model = create_model(name, num_classes=3, pretrained=False).model
    groups = layer_groups(model)
    names = [n for g in groups for n in g.param_names]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())  # each parameter exactly once
    assert len(groups) == count and groups[0].name == first and groups[-1].is_head
    assert all(n.split(".")[-1] in ("weight", "bias") for n in groups[-1].param_names)


def test_torchvision_vit_keeps_its_direct_parameters():
    model = create_model("tv:vit_b_16", num_classes=3, pretrained=False).model
    names = {n for g in layer_groups(model) for n in g.param_names}
    assert {"class_token", "encoder.pos_embedding"} <= names
    assert len(layer_groups(model)) == 17  # 12 encoder layers expanded out of the dominant container


def test_advisor_table():
    little, enough = LITTLE_DATA - 1, LITTLE_DATA
    assert recommend(little, SIMILAR, True)[0] == "linear-probe"
    assert recommend(little, SIMILAR - 0.01, True)[0] == "gradual"
    assert recommend(enough, SIMILAR, True)[0] == "gradual"
    assert recommend(enough, 0.1, True)[0] == "discriminative"
    assert recommend(little, 0.99, False)[0] == "full"
    strategy, reason = recommend(50, 0.42, True)
    assert "50 images per class" in reason and "separability 0.42" in reason
    assert reason.startswith("few images and unfamiliar features")


def test_advisor_names_texts_as_texts():
    strategy, reason = recommend(50, 0.42, True, unit="texts")
    assert "50 texts per class" in reason and "few texts" in reason and "image" not in reason
    # advise() takes the unit from the data: no model needed when there is no head to measure with
    samples = [TextSample(f"review {i}", i % 2) for i in range(40)]
    spec = DataSpec(["neg", "pos"], samples, [], "table", modality="text")
    advice = advise(spec, None, None, None, True, torch.device("cpu"))
    assert "20 texts per class" in advice.reason and "image" not in advice.reason
    assert advice.to_dict()["train_images"] == 40  # advice.json keeps its field names


def test_knn_accuracy_on_clusters_and_noise():
    torch.manual_seed(0)
    centers = torch.randn(4, 16) * 5
    labels = torch.arange(4).repeat_interleave(25)
    clustered = centers[labels] + torch.randn(100, 16) * 0.5
    assert knn_accuracy(clustered, labels) == 1.0
    noise = torch.randn(100, 16)
    assert knn_accuracy(noise, labels) < 0.5


def test_staging_rebuild_equals_the_stages_entered_one_by_one():
    """Resuming after an unfreeze rebuilds exactly the param groups the run had (Lightning#6891)."""
    model = create_model("test_resnet", num_classes=3, pretrained=False).model
    groups = layer_groups(model)
    stages = plan_stages("gradual", len(groups), epochs=4, layer_decay=0.5)

    def staging(net: nn.Module) -> Staging:
        return Staging(
            net, groups=groups, stages=stages, make_optimizer=lambda g: create_optimizer(_optim_cfg(), g),
            base_lr=1e-3, weight_decay=0.05,
        )  # fmt: skip

    live = staging(model)
    optimizer = live.build(0)
    for previous, stage in zip(stages, stages[1:3]):
        live.enter(stage, previous, optimizer, step=10)
    rebuilt = staging(create_model("test_resnet", num_classes=3, pretrained=False).model).build(2)
    assert [(g["name"], g["lr"], g["weight_decay"], len(g["params"])) for g in optimizer.param_groups] == [
        (g["name"], g["lr"], g["weight_decay"], len(g["params"])) for g in rebuilt.param_groups
    ]
    rebuilt.load_state_dict(optimizer.state_dict())  # the checkpoint's optimizer state fits
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for name, param in model.named_parameters():
        assert (id(param) in in_optimizer) == param.requires_grad, name
    assert {g["name"] for g in optimizer.param_groups if g["weight_decay"] == 0} == {
        g["name"] for g in optimizer.param_groups if g["name"].endswith("/no_decay")
    }


def _optim_cfg():
    from graft.config import OptimConfig

    return OptimConfig()
