"""The feature classifier: its blocks, its feature maps, and safe persistence with a recorded SHA-256."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

import vaekit
from vaekit.errors import CheckpointError, ConfigError, DataError
from vaekit.models import FeatureClassifier, classifier_sha256, load_classifier, save_classifier


def test_conv_classifier_computes_its_blocks_by_hand():
    torch.manual_seed(0)
    net = FeatureClassifier((1, 8, 8), 3, channels=(4, 6), hidden_dims=(10, 5))
    x = torch.rand(7, 1, 8, 8)
    (c1, _, _), (c2, _, _), l1, l2 = net.blocks[0], net.blocks[1], net.blocks[2][1], net.blocks[3][0]
    h1 = F.max_pool2d(F.relu(F.conv2d(x, c1.weight, c1.bias, padding=1)), 2)
    h2 = F.max_pool2d(F.relu(F.conv2d(h1, c2.weight, c2.bias, padding=1)), 2)
    h3 = F.relu(h2.reshape(7, -1) @ l1.weight.T + l1.bias)
    h4 = F.relu(h3 @ l2.weight.T + l2.bias)
    maps = net.feature_maps(x)
    assert [tuple(m.shape) for m in maps] == [(7, 4, 4, 4), (7, 6, 2, 2), (7, 10), (7, 5)]
    for got, want in zip(maps, (h1, h2, h3, h4)):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(net.features(x), h4)
    torch.testing.assert_close(net(x), h4 @ net.head.weight.T + net.head.bias)
    features, logits = net.outputs(x, batch_size=3)  # batched, same numbers
    torch.testing.assert_close(features, h4)
    torch.testing.assert_close(logits, net(x))
    assert net.num_features == 5 and net.arch == "conv"


@pytest.mark.parametrize("shape, arch", [((1, 28, 28), "conv"), ((3, 8, 9), "conv"), ((1, 4, 4), "mlp"), ((12,), "mlp")])
def test_auto_arch_picks_a_cnn_for_images_of_at_least_8x8(shape, arch):
    net = FeatureClassifier(shape, 4)
    assert net.arch == arch
    assert net(torch.rand(2, *shape)).shape == (2, 4) and net.features(torch.rand(2, *shape)).shape == (2, 128)


def test_default_fashion_mnist_classifier_is_commit_sized():
    net = FeatureClassifier((1, 28, 28), 10)
    assert sum(p.numel() for p in net.parameters()) * 4 < 2_000_000  # float32 bytes


@pytest.mark.parametrize("kwargs, message", [
    ({"input_shape": (5,), "num_classes": 3, "arch": "conv"}, "needs images"),
    ({"input_shape": (1, 8, 8), "num_classes": 3, "channels": (4, 4, 4, 4)}, "below 1×1"),
    ({"input_shape": (1, 8, 8), "num_classes": 1}, "num_classes"),
    ({"input_shape": (1, 8, 8), "num_classes": 3, "hidden_dims": ()}, "hidden_dims"),
    ({"input_shape": (1, 8, 8), "num_classes": 3, "arch": "resnet"}, "arch"),
])
def test_impossible_configurations_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FeatureClassifier(**kwargs)


def test_input_of_another_shape_is_one_clear_error():
    with pytest.raises(DataError, match=r"expects \(batch, 1, 8, 8\)"):
        FeatureClassifier((1, 8, 8), 3)(torch.rand(2, 1, 28, 28))


def test_round_trip_keeps_weights_and_records_their_sha256(tmp_path):
    torch.manual_seed(1)
    net = FeatureClassifier((1, 8, 8), 10, channels=(4, 8), hidden_dims=(16,))
    save_classifier(net, tmp_path)
    loaded = vaekit.load_classifier(tmp_path, device="cpu")
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
    assert loaded.config == net.config and not loaded.training
    config = json.loads((tmp_path / "config.json").read_text())
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        recorded = f.metadata()["sha256"]
    assert config["kind"] == "classifier" and config["weights_sha256"] == recorded == classifier_sha256(net) == classifier_sha256(loaded)


def test_sha256_names_the_exact_weights():
    torch.manual_seed(2)
    net = FeatureClassifier((6,), 3, hidden_dims=(4,))
    before = classifier_sha256(net)
    torch.manual_seed(2)
    assert classifier_sha256(FeatureClassifier((6,), 3, hidden_dims=(4,))) == before  # same seed, same weights
    with torch.no_grad():
        net.head.bias[0] = torch.nextafter(net.head.bias[0], torch.tensor(1.0))  # one ulp
    assert classifier_sha256(net) != before and len(before) == 64


def test_damaged_or_mismatched_files_are_refused(tmp_path):
    net = FeatureClassifier((1, 8, 8), 3, channels=(2,), hidden_dims=(4,))
    save_classifier(net, tmp_path / "a")
    weights = tmp_path / "a" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # a bit inside the tensor data, where the safetensors header cannot see it
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="integrity"):
        load_classifier(tmp_path / "a")

    save_classifier(net, tmp_path / "b")
    other = FeatureClassifier((1, 8, 8), 3, channels=(2,), hidden_dims=(4,))
    save_classifier(other, tmp_path / "c")
    (tmp_path / "b" / "model.safetensors").write_bytes((tmp_path / "c" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="different saves"):
        load_classifier(tmp_path / "b")


def test_missing_folders_and_model_runs_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="train-classifier"):
        load_classifier(tmp_path / "nothing")
    vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, hidden_dims=(8,), arch="mlp").save(tmp_path / "vae")
    with pytest.raises(CheckpointError, match="'vae' model run, not a feature classifier"):
        load_classifier(tmp_path / "vae")
