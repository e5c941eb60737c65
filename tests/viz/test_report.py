"""vaekit.viz.write_report: one self-contained HTML page, built from a loaded model and a run folder."""

import base64
import html
import io
import json
import re

import pytest
import torch
from PIL import Image

import vaekit
from vaekit.errors import ConfigError, DataError
from vaekit.viz import write_report


def saved(folder, name="vae", latent_dim=2, **options):
    torch.manual_seed(0)
    model = vaekit.create(name, input_shape=(1, 4, 4), latent_dim=latent_dim, arch="mlp", hidden_dims=(8,), **options)
    model.save(str(folder))
    return model


def images_of(page):
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_the_page_embeds_valid_pngs_and_escapes_every_text(tmp_path):
    model = saved(tmp_path)
    (tmp_path / "train.yaml").write_text("data: '<script>alert(1)</script>'\nepochs: 3\n")
    (tmp_path / "metrics.json").write_text(json.dumps({"elbo": -12.345678, "kl_per_dimension": [0.5, 0.25],
                                                       "unit_activity": [0.2, 0.0]}))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "train/loss": 10.0 - e, "val/loss": 11.0 - e}) + "\n"
                                                    for e in (1, 2, 3)))
    x = torch.rand(20, 1, 4, 4)
    path = write_report(tmp_path, model=model, data=x, y=torch.arange(20) % 4, data_name="toy & co")
    assert path == tmp_path / "report.html"
    page = path.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "toy &amp; co" in page
    assert "-12.346" in page  # five significant digits
    pictures = images_of(page)
    assert len(pictures) == 7 and all(p.format == "PNG" and min(p.size) > 0 for p in pictures)
    assert re.findall(r"<h2>(.*?)</h2>", page)[:3] == ["Configuration", "Metrics", "Training curves"]
    assert "<style>" in page and "<link rel=\"stylesheet\"" not in page and "<script" not in page


def test_missing_run_files_become_notes_not_errors(tmp_path):
    model = saved(tmp_path, latent_dim=3)
    page = html.unescape(write_report(tmp_path, model=model).read_text())
    assert "metrics.json is missing" in page and "metrics.jsonl is missing" in page and "train.yaml is missing" in page
    assert "no data was given" in page
    assert len(images_of(page)) == 1  # the prior's samples need no data


def test_traversals_are_refused_for_codes_on_the_simplex(tmp_path):
    model = saved(tmp_path, "categorical_vae", latent_dim=1, categories=3)
    page = html.unescape(write_report(tmp_path, model=model, data=torch.rand(10, 1, 4, 4)).read_text())
    assert "not real-valued" in page and 'alt="latent traversals"' not in page


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path):
    model = saved(tmp_path)
    with pytest.raises(ConfigError, match=r"\.html"):
        write_report(tmp_path, tmp_path / "report.txt", model=model)
    with pytest.raises(DataError, match=r"\(1, 4, 4\)"):
        write_report(tmp_path, model=model, data=torch.rand(5, 1, 8, 8))
    conditional = vaekit.create("conditional_vae", input_shape=(1, 4, 4), latent_dim=2, arch="mlp", hidden_dims=(8,), num_classes=2)
    with pytest.raises(ConfigError, match="give y"):
        write_report(tmp_path, model=conditional, data=torch.rand(5, 1, 4, 4))
    with pytest.raises(ConfigError, match="not a folder"):
        write_report(tmp_path / "nowhere", model=model)
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "report.txt").exists()
