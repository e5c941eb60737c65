"""`vaekit latent-map` and `vaekit report`: the files they write, and one clear line for every user error."""

import html
import json
import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit.cli import main
from vaekit.data import load_dataset

TINY = ["--data", "digits", "--arch", "mlp", "--epochs", "1", "--latent-dim", "2", "--hidden-dims", "16", "--nll-samples", "5", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "vae"
    assert main(["train", "vae", *TINY, "--out", str(out)]) == 0
    return out


def saved(folder, name="vae", input_shape=(1, 8, 8), latent_dim=3, **options):
    """A run folder as model.save writes it: config.json and model.safetensors only."""
    torch.manual_seed(0)
    model = vaekit.create(name, input_shape=input_shape, latent_dim=latent_dim, arch="mlp", hidden_dims=(16,), **options)
    model.save(str(folder))
    return model


def snapshot(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()} if folder.exists() else None


def one_error_line(capsys, command):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vaekit {command}: error:"), err
    return err[0]


def test_latent_map_writes_the_map_and_the_manifold_of_a_2d_run(trained, capsys):
    assert main(["latent-map", str(trained), "--quiet"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(trained / "latent_map.png"), str(trained / "manifold.png")]
    assert Image.open(trained / "latent_map.png").size == (640, 500)
    assert Image.open(trained / "manifold.png").size == (15 * (32 + 2) + 2,) * 2  # 15 × 15 tiles of 8×8 images shown 4×


def test_latent_map_tsne_to_a_chosen_file_without_a_manifold_for_3d_codes(tmp_path, capsys):
    run = tmp_path / "run3"
    saved(run, latent_dim=3)
    out = tmp_path / "maps" / "tsne.png"
    assert main(["latent-map", str(run), "--data", "digits", "--method", "tsne", "-n", "60", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(out)] and Image.open(out).format == "PNG"
    assert not (run / "manifold.png").exists() and not (run / "latent_map.png").exists()


def test_a_map_of_unlabelled_data_says_it_is_one_colour(trained, tmp_path, capsys):
    images = tmp_path / "unlabelled.npy"
    np.save(images, load_dataset("digits", split="test").x[:50, 0].numpy())
    out = tmp_path / "map.png"
    assert main(["latent-map", str(trained), "--data", str(images), "-o", str(out), "--manifold", str(tmp_path / "m.png")]) == 0
    err = capsys.readouterr().err
    assert "no class labels" in err and "one colour" in err
    assert out.is_file() and (tmp_path / "m.png").is_file()


def test_latent_map_umap_without_umap_learn_is_one_line_with_the_pip_command(trained, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    before = snapshot(trained)
    assert main(["latent-map", str(trained), "--method", "umap", "-o", str(trained / "umap.png")]) == 2
    assert "pip install umap-learn" in one_error_line(capsys, "latent-map")
    assert snapshot(trained) == before


def test_report_writes_one_html_file_and_touches_nothing_else(trained, capsys):
    (trained / "sample_quality.json").write_text(json.dumps({"fd": 12.5, "kid": 0.01, "precision": 0.7, "sampler": "<prior>"}))
    before = snapshot(trained)
    assert main(["report", str(trained), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(trained / "report.html")
    after = snapshot(trained)
    assert after.pop("report.html") and {k: v for k, v in after.items()} == {k: v for k, v in before.items() if k != "report.html"}
    page = (trained / "report.html").read_text()
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == ["Configuration", "Metrics", "Training curves", "Samples", "Reconstructions", "Latent traversals",
                        "Latent map", "KL per dimension", "Sample quality"]
    assert "&lt;prior&gt;" in page and "<prior>" not in page  # file contents are escaped
    assert "disentanglement.json" in page  # named as not computed
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith(("data:", "#")) for s in sources)  # nothing from the network
    assert page.count("<img ") == 7  # curves, samples, reconstructions, traversals, map, manifold, KL


def test_report_of_a_deterministic_autoencoder_uses_its_fitted_sampler(tmp_path, capsys):
    from vaekit.samplers import GaussianMixtureSampler

    run = tmp_path / "ae"
    model = saved(run, "ae", latent_dim=3)
    assert main(["report", str(run), "--data", "digits", "--quiet"]) == 0
    page = (run / "report.html").read_text()
    assert "no prior to sample from" in page and "metrics.json is missing" in page
    x = load_dataset("digits", split="train").x[:200]
    GaussianMixtureSampler(components=2).fit(model, x).save(run)
    assert main(["report", str(run), "--data", "digits", "--quiet", "-o", str(tmp_path / "ae.html")]) == 0
    page = (tmp_path / "ae.html").read_text()
    assert "ex-post gmm sampler" in page and "no prior to sample from" not in page


def test_report_of_a_table_shows_marginals_and_a_scatter_not_image_grids(tmp_path, capsys):
    rng = np.random.default_rng(0)
    table = tmp_path / "table.npz"
    np.savez(table, x=rng.normal(size=(80, 4)).astype(np.float32), y=np.arange(80) % 2)
    run = tmp_path / "tab"
    saved(run, input_shape=(4,), latent_dim=2, likelihood="gaussian")
    assert main(["report", str(run), "--data", str(table), "--quiet"]) == 0
    page = html.unescape((run / "report.html").read_text())
    assert "Histograms: the data's features against the samples'" in page and "against its reconstruction" in page
    assert "not drawn for vector data" in page and "decoded manifold" not in page


@pytest.mark.parametrize("contents", [[], ["config.json"], ["model.safetensors"]])
def test_report_of_an_incomplete_folder_is_one_line_and_writes_nothing(tmp_path, capsys, contents):
    run = tmp_path / "broken"
    run.mkdir()
    for name in contents:
        (run / name).write_text("{}")
    before = snapshot(run)
    assert main(["report", str(run)]) == 2
    line = one_error_line(capsys, "report")
    assert "not a complete run folder" in line and "vaekit train" in line
    assert all(name in line for name in {"config.json", "model.safetensors"} - set(contents))
    assert snapshot(run) == before


def test_report_of_a_missing_folder_or_a_bad_output_is_refused_before_any_work(tmp_path, trained, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in one_error_line(capsys, "report") and not (tmp_path / "nowhere").exists()
    before = snapshot(trained)
    assert main(["report", str(trained), "-o", str(tmp_path / "report.pdf")]) == 2
    assert ".html" in one_error_line(capsys, "report")
    assert main(["latent-map", str(trained), "--data", "fashion-mnist", "--data-dir", str(tmp_path)]) == 2
    one_error_line(capsys, "latent-map")
    assert snapshot(trained) == before
