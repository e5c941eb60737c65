"""The explorer's server over HTTP: the API's answers against the model, bad input, the command line."""

from __future__ import annotations

import io
import json
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.errors import ConfigError
from vaekit.serve import make_server


def _get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _post(url: str, body: bytes | dict, kind: str = "application/json") -> tuple[int, dict, bytes]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def _expected(mean: torch.Tensor) -> np.ndarray:
    """E p(x | z) in [0, 1] as 8-bit grey pixels, computed here independently of vaekit's renderer."""
    return np.rint(mean.numpy().reshape(8, 8).clip(0, 1) * 255).astype(np.uint8)


def test_page_info_and_points(server_url, explorer):
    status, headers, page = _get(server_url + "/")
    assert status == 200 and b"<canvas id=\"plane\"" in page and b"http" not in page.replace(b"http-equiv", b"")
    for name in ("explorer.js", "explorer.css"):
        status, _, body = _get(f"{server_url}/static/{name}")
        assert status == 200 and b"https://" not in body and b"http://" not in body
    assert _get(server_url + "/static/../server.py")[0] == 404
    status, _, body = _get(server_url + "/api/info")
    info = json.loads(body)
    assert status == 200 and info["latent_dim"] == 3 and info["plane"] == "pca" and info["names"] == ["PC1", "PC2", "PC3"]
    assert np.array(info["ranges"]).shape == (3, 2) and info["image_size"] == [8, 8] and not info["conditional"]
    points = json.loads(_get(server_url + "/api/points")[2])
    assert len(points["u"]) == len(points["v"]) == 300
    from vaekit.data import load_dataset

    assert points["label"] == load_dataset("digits", split="test").y[:300].tolist()


def test_decode_is_the_decoder_mean_at_the_plane_point(server_url, explorer):
    u, v, rest = 0.3, -0.2, [0.1]
    status, headers, png = _post(server_url + "/api/decode", {"u": u, "v": v, "rest": rest})
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert float(headers["X-Decode-Ms"]) > 0
    b = explorer.plane.basis
    z = explorer.plane.origin + u * b[0] + v * b[1] + rest[0] * b[2]
    with torch.no_grad():
        mean = explorer.model.decode(z[None].float()).mean
    assert np.array_equal(_pixels(png), _expected(mean))


def test_example_interpolation_and_encoding(server_url, explorer):
    from vaekit.data import load_dataset

    x = load_dataset("digits", split="test").x[:300]
    ex = json.loads(_get(server_url + "/api/example/7")[2])
    original = _pixels(__import__("base64").b64decode(ex["original"].split(",", 1)[1]))
    assert np.array_equal(original, np.rint(x[7, 0].numpy() * 255).astype(np.uint8))
    code = explorer.model.transform(x[7:8])
    with torch.no_grad():
        recon = explorer.model.decode(code).mean
    assert np.array_equal(_pixels(__import__("base64").b64decode(ex["reconstruction"].split(",", 1)[1])), _expected(recon))

    status, _, strip = _post(server_url + "/api/interpolate", {"i": 7, "j": 9, "steps": 4})
    strip = _pixels(strip)
    assert status == 200 and strip.shape == (10, 4 * 9 + 1)
    assert np.array_equal(strip[1:9, 1:9], _expected(recon))  # the strip starts at example 7's code

    # an image file of example 7 lands where example 7 is drawn (up to 8-bit rounding of the pixels)
    upload = io.BytesIO()
    Image.fromarray(original).save(upload, format="PNG")
    status, _, body = _post(server_url + "/api/encode", upload.getvalue(), "application/octet-stream")
    out = json.loads(body)
    assert status == 200 and out["u"] == pytest.approx(ex["u"], abs=0.02) and out["v"] == pytest.approx(ex["v"], abs=0.02)


def test_bad_requests_get_a_message_and_the_server_keeps_running(server_url):
    status, _, body = _post(server_url + "/api/encode", b"this is not an image", "application/octet-stream")
    assert status == 400 and "not an image" in json.loads(body)["error"]
    wrong = io.BytesIO()
    Image.new("L", (28, 28)).save(wrong, format="PNG")
    status, _, body = _post(server_url + "/api/encode", wrong.getvalue(), "application/octet-stream")
    assert status == 400 and "28×28" in json.loads(body)["error"] and "8×8" in json.loads(body)["error"]
    status, _, body = _post(server_url + "/api/decode", b"{u: 1", "application/json")
    assert status == 400 and "JSON" in json.loads(body)["error"]
    status, _, body = _post(server_url + "/api/decode", {"u": "left", "v": 0})
    assert status == 400 and "u must be a finite number" in json.loads(body)["error"]
    status, _, body = _post(server_url + "/api/decode", {"u": 0, "v": 0, "rest": [1, 2]})
    assert status == 400 and "rest must hold" in json.loads(body)["error"]
    status, _, body = _get(server_url + "/api/example/100000")
    assert status == 400 and "0..299" in json.loads(body)["error"]
    assert _get(server_url + "/api/nothing")[0] == 404
    assert _get(server_url + "/api/info")[0] == 200  # still serving


def test_port_in_use_is_refused(explorer, tiny_run, tmp_path, capsys):
    from vaekit.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} is in use.*--port"):
            make_server(explorer, port=port)
        assert main(["explore", str(tiny_run), "--port", str(port), "--no-browser"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"port {port} is in use" in err[0] and "--port" in err[0]
    (tmp_path / "config.json").write_text(json.dumps({"kind": "classifier"}))  # a run without a decoder
    assert main(["explore", str(tmp_path), "--port", "0", "--no-browser"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no decoder" in err[0]
    assert main(["explore", str(tiny_run), "--dims", "0,7", "--port", "0", "--no-browser"]) == 2
    assert "0..2" in capsys.readouterr().err


def test_command_serves_until_interrupted(tiny_run, capsys):
    """``vaekit explore`` prints the URL, answers there, and Ctrl-C (KeyboardInterrupt) ends it with one line and status 0."""
    import _thread
    import signal
    import threading
    import time

    from vaekit.cli import main

    # Ctrl-C needs Python's SIGINT handler: a shell starts background jobs (`pytest &`) with SIGINT ignored, and then
    # interrupt_main does nothing and the server would serve forever
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answers = []

    def client() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not answers:
            try:
                answers.append(json.loads(_get(f"http://127.0.0.1:{port}/api/info")[2]))
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                time.sleep(0.1)
        _thread.interrupt_main()  # what Ctrl-C does

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        code = main(["explore", str(tiny_run), "--port", str(port), "--no-browser", "-n", "50"])
    finally:
        signal.signal(signal.SIGINT, previous)
    thread.join()
    out, err = capsys.readouterr()
    assert code == 0 and out.strip() == f"http://127.0.0.1:{port}/"
    assert answers and answers[0]["num_points"] == 50
    assert err.strip().splitlines()[-1] == "vaekit explore: stopped"


def test_conditional_models_decode_the_chosen_label_and_bad_models_are_refused():
    import vaekit
    from vaekit.errors import DataError
    from vaekit.serve import Explorer

    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, num_classes=3, arch="mlp", hidden_dims=(8,), likelihood="bernoulli")
    x, y = torch.rand(40, 1, 8, 8), torch.arange(40) % 3
    explorer = Explorer(model, model.transform(x, y), x, y, dims=(1, 0))
    assert explorer.info()["conditional"] and explorer.info()["num_classes"] == 3
    png, ms = explorer.decode_png(0.4, -0.3, [], label=2)
    z = torch.tensor([[-0.3, 0.4]])  # u is z1, v is z0
    with torch.no_grad():
        assert np.array_equal(_pixels(png), _expected(model.decode(z, torch.tensor([2])).mean)) and ms > 0
        assert not np.array_equal(_pixels(png), _expected(model.decode(z, torch.tensor([0])).mean))
    with pytest.raises(DataError, match="label must be a class in 0..2"):
        explorer.decode_png(0.0, 0.0, [], label=3)
    with pytest.raises(ConfigError, match="latent_dim=1"):
        one = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=1, arch="mlp", hidden_dims=(8,))
        Explorer(one, torch.zeros(5, 1), x)
    vectors = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=2, condition_dim=4, arch="mlp", hidden_dims=(8,))
    with pytest.raises(ConfigError, match="conditioned on vectors"):
        Explorer(vectors, torch.zeros(5, 2), x)


@pytest.fixture(scope="module")
def small_explorer():
    """An explorer over an untrained conditional model (latent_dim 3, 8×8 grey): no training needed."""
    import vaekit
    from vaekit.serve import Explorer

    torch.manual_seed(0)
    model = vaekit.create("vae", input_shape=(1, 8, 8), latent_dim=3, num_classes=3, hidden_dims=(16,))
    x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 3
    return Explorer(model, model.transform(x, y), x, y)


@pytest.fixture(scope="module")
def small_url(small_explorer):
    import threading

    server = make_server(small_explorer, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,                     # nested too deep for the JSON parser
    b'{"u": 1' + b"0" * 400 + b', "v": 0}',              # an integer beyond float's range
    b'{"u": 0, "v": 0, "label": Infinity}',              # a label that is no integer
    b'{"u": 0, "v": 0, "label": 1e400}',
    b'{"u": 0, "v": 0, "label": NaN}',
    b'{"u": 1e308, "v": -1e308}',                        # finite, but no float32 code: the decoder gives NaN
    b'{"u": 0, "v": 0, "rest": [1e300]}',
])
def test_hostile_decode_requests_get_a_400_naming_the_problem(small_url, body):
    """Never a 500: each is a 400 whose message says what is wrong, and the server keeps answering."""
    status, headers, answer = _post(small_url + "/api/decode", body)
    error = json.loads(answer)["error"]
    assert status == 400 and headers["Content-Type"] == "application/json", error
    assert any(word in error for word in ("must be JSON", "finite number", "label must be a class", "too far")), error
    assert _get(small_url + "/api/info")[0] == 200


def test_other_methods_and_malformed_requests_get_json_errors(small_url):
    """PUT/DELETE are a JSON 405 naming GET and POST; a garbled request line a JSON 400, not the stdlib's HTML."""
    request = urllib.request.Request(small_url + "/api/decode", data=b"{}", method="PUT")
    status, headers, body = _get(request)
    assert status == 405 and headers["Allow"] == "GET, POST" and "use GET or POST" in json.loads(body)["error"]
    host, port = small_url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert json.loads(answer[answer.index(b"{"):])["error"].startswith("Bad request syntax")
    assert _get(small_url + "/api/info")[0] == 200


def test_example_indices_that_are_not_plain_ascii_digits_are_a_clear_400(small_explorer):
    """'²' is a digit to str.isdigit but no index; 5000 digits exceed Python's int parsing limit."""
    from vaekit.errors import DataError

    for index in ("\u00b2", "9" * 5000):
        with pytest.raises(DataError, match=r"example must be an example index in 0\.\.19"):
            small_explorer.example(index)


def test_a_16_bit_grey_png_is_read_as_a_fraction_of_65535(small_explorer):
    """Pillow's convert("L") clips 16-bit values at 255 (nearly all white); the upload must scale them instead."""
    values = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)
    upload = io.BytesIO()
    Image.fromarray(values).save(upload, format="PNG")
    np.testing.assert_allclose(small_explorer._read_image(upload.getvalue()), values / 65535.0, atol=1e-6)


def test_a_huge_image_is_refused_by_its_size_before_decoding(small_explorer):
    """The size in the header decides, before any pixel is decoded: a bomb-sized image is "too many pixels",
    a 9000×9000 one is named by its size (neither is "not an image")."""
    import struct
    import zlib

    from vaekit.errors import DataError

    small = io.BytesIO()
    Image.new("L", (8, 8)).save(small, format="PNG")
    for side, match in ((20000, "far too many pixels.*resize it to 8×8"), (9000, "9000×9000 pixels.*resize it to 8×8")):
        png = bytearray(small.getvalue())  # the same file with the header's width and height changed (and its CRC)
        ihdr = png[12:29]
        ihdr[4:12] = struct.pack(">II", side, side)
        png[12:29] = ihdr
        png[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
        with pytest.raises(DataError, match=match):
            small_explorer._read_image(bytes(png))
