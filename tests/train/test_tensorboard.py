"""TensorBoardCallback: the event file read back with TensorBoard's own EventAccumulator."""

import io
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import vaekit
from vaekit.cli import main
from vaekit.errors import ConfigError
from vaekit.train.callbacks import TensorBoardCallback

TINY = ["--data", "digits", "--arch", "mlp", "--epochs", "2", "--latent-dim", "2", "--hidden-dims", "16", "--nll-samples", "0", "--quiet"]


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, hidden_dims=(16,), arch="mlp")


def read_events(log_dir):
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def decoded(image_event) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_event.encoded_image_string)).convert("L"), dtype=np.float64) / 255


def tiles(grid: np.ndarray, n: int, side: int = 8) -> np.ndarray:
    """TensorBoard's add_images grid (no padding, up to 8 per row) back into (n, side, side)."""
    per_row = min(n, 8)
    return np.stack([grid[(i // per_row) * side:(i // per_row + 1) * side, (i % per_row) * side:(i % per_row + 1) * side] for i in range(n)])


def test_scalars_per_epoch_and_images_read_back(tmp_path):
    x = vaekit.data.load_digits("train").x[:128]
    model = tiny_model()
    callback = TensorBoardCallback(tmp_path / "tb", num_images=4)
    assert not (tmp_path / "tb").exists()  # nothing is written before training starts
    result = vaekit.fit(model, x, epochs=3, batch_size=32, quiet=True, callbacks=[callback])  # no val: the last epoch is the model
    events = read_events(tmp_path / "tb")
    for tag in ("train/loss", "train/kl", "samples_per_s"):
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [1, 2, 3]
        np.testing.assert_allclose([e.value for e in logged], [r[tag] for r in result.history], rtol=1e-6)
    assert {"config/text_summary"} <= set(events.Tags()["tensors"])

    samples, reconstructions = events.Images("samples"), events.Images("reconstructions")
    assert [e.step for e in samples] == [e.step for e in reconstructions] == [1, 2, 3]
    # the last epoch's images, recomputed from the returned model (uint8 truncation: within 1/255)
    torch.manual_seed(0)
    expected = model.sample(4).reshape(4, 8, 8).numpy()
    np.testing.assert_allclose(tiles(decoded(samples[-1]), 4), expected, atol=1 / 255 + 1e-6)
    top_then_bottom = torch.cat([x[:4], model.reconstruct(x[:4])]).reshape(8, 8, 8).numpy()
    np.testing.assert_allclose(tiles(decoded(reconstructions[-1]), 8), top_then_bottom, atol=1 / 255 + 1e-6)


def test_logging_images_leaves_training_unchanged(tmp_path):
    x = vaekit.data.load_digits("train").x[:64]
    plain, logged = tiny_model(), tiny_model()
    vaekit.fit(plain, x, epochs=2, batch_size=32, quiet=True)
    vaekit.fit(logged, x, epochs=2, batch_size=32, quiet=True, callbacks=[TensorBoardCallback(tmp_path, images_every=1)])
    for a, b in zip(plain.state_dict().values(), logged.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # the samples come from a forked RNG


def test_images_every_thins_the_images(tmp_path):
    x = vaekit.data.load_digits("train").x[:64]
    vaekit.fit(tiny_model(), x, epochs=3, batch_size=32, quiet=True, callbacks=[TensorBoardCallback(tmp_path, images_every=2)])
    assert [e.step for e in read_events(tmp_path).Images("samples")] == [2, 3]  # every 2nd epoch, and the last


def test_cli_writes_event_files(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "vae", *TINY, "--out", str(out), "--tensorboard"]) == 0  # default: OUT/tensorboard
    assert [e.step for e in read_events(out / "tensorboard").Scalars("val/loss")] == [1, 2]
    assert main(["train", "vae", *TINY, "--epochs", "1", "--out", str(tmp_path / "other"), "--tensorboard", str(tmp_path / "tb")]) == 0
    assert [e.step for e in read_events(tmp_path / "tb").Images("reconstructions")] == [1]


def test_missing_package_is_one_line_exit_2_and_nothing_written(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import now fails as if it were not installed
    with pytest.raises(ConfigError, match=r"^--tensorboard needs the tensorboard package: pip install 'vaekit\[tensorboard\]'$"):
        TensorBoardCallback(tmp_path / "tb")
    assert main(["train", "vae", *TINY, "--out", str(tmp_path / "run"), "--tensorboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'vaekit[tensorboard]'" in err
    assert list(tmp_path.iterdir()) == []
