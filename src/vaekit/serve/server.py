"""The latent explorer's HTTP server: a page, its static files and a small JSON API over one model.

:class:`Explorer` holds what the page shows (the plane, the encoded test examples) and
answers the API's questions with the model; :func:`make_server` wraps it in the standard
library's ``ThreadingHTTPServer`` on 127.0.0.1:

==========================  =========================================================================
``GET /``                   the page (``static/explorer.html``)
``GET /static/NAME``        the page's script and style sheet (only the files shipped in ``static/``)
``GET /api/info``           latent size, plane kind, coordinate names and ranges, labels, image size
``GET /api/points``         the plane coordinates (u, v) and labels of the encoded test examples
``POST /api/decode``        ``{"u", "v", "rest": [...], "label"}`` → ``image/png`` of E p(x | z);
                            the header ``X-Decode-Ms`` is the server's time for decode + PNG
``GET /api/example/I``      example I's original and reconstruction (PNG data URLs) and its place
``POST /api/interpolate``   ``{"i", "j", "steps", "label"}`` → ``image/png``: the decoded strip from
                            example i's code to example j's (linear in z)
``POST /api/encode``        an image file's bytes (``?label=K`` for conditional models) → its code's
                            coordinates and reconstruction, or 400 ``{"error": ...}``
==========================  =========================================================================

Every error answer is JSON ``{"error": "one line"}`` with status 400 (bad request), 404, 405
(a method other than GET and POST) or 413 (too large); the server keeps serving. Decoding runs
under ``torch.inference_mode()`` behind a lock (one model, many request threads).
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vaekit.errors import ConfigError, DataError, VaekitError
from vaekit.serve.plane import Plane, axis_plane, coordinate_ranges, pca_plane, to_latent, to_plane
from vaekit.viz.grids import image_grid, to_images

__all__ = ["Explorer", "make_server", "render_png", "MAX_UPLOAD_BYTES", "MAX_STEPS"]

MAX_UPLOAD_BYTES = 10 * 2**20
"""Largest request body accepted (an uploaded image), in bytes; larger ones get 413."""

MAX_STEPS = 32
"""Most images in an interpolation strip."""

_STATIC = {"explorer.html": "text/html; charset=utf-8", "explorer.js": "text/javascript; charset=utf-8",
           "explorer.css": "text/css; charset=utf-8"}


def render_png(images: torch.Tensor, input_shape: Sequence[int], nrow: int | None = None) -> bytes:
    """PNG bytes of decoded ``images`` (N, *input_shape) in one row, drawn like ``vaekit sample`` (:func:`~vaekit.viz.image_grid`).

    Pixel values in [0, 1] are kept (0 black, 1 white); anything else is min-max scaled over
    the batch. No padding between single images; 1 pixel between the images of a strip.
    """
    imgs = to_images(images.detach().float().cpu(), tuple(input_shape))
    n = imgs.shape[0]
    array = image_grid(imgs, nrow=n if nrow is None else nrow, padding=0 if n == 1 else 1)
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class Explorer:
    """The state behind the page: a model, a plane through its latent space, and encoded examples.

    Arguments:
        model: a trained vaekit model with a decoder and ``latent_dim >= 2``; unconditional or
            conditioned on labels (``num_classes``).
        train_codes: ``(N, D)`` codes of the training data: they fix the plane (their mean,
            and their principal directions when ``dims`` is None and D > 2) and the ranges.
        x: ``(M, *input_shape)`` examples to show (the test split), ``y`` their labels or None.
        dims: two latent dimensions for the plane; default (0, 1) when D = 2, else the top
            two principal directions.

    Example:
        >>> explorer = Explorer(model, train_codes, x_test[:2000], y_test[:2000])  # doctest: +SKIP
        >>> png, ms = explorer.decode_png(0.5, -1.0)  # doctest: +SKIP
    """

    def __init__(self, model: Any, train_codes: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None = None,
                 dims: Sequence[int] | None = None) -> None:
        self.model = model
        self.latent_dim = int(model.latent_dim)
        if self.latent_dim < 2:
            raise ConfigError(f"the explorer draws a plane of the latent space, and this model has latent_dim={self.latent_dim}; "
                              "train one with --latent-dim 2 or more")
        if getattr(model, "decoder", None) is None:
            raise ConfigError("this model has no decoder, so the explorer has nothing to draw; give a run of a model with a decoder")
        if model.condition_dim:
            raise ConfigError("this model is conditioned on vectors, which the explorer cannot choose; "
                              "explore an unconditional model or one trained on labels (--conditional)")
        self.num_classes = int(model.num_classes or 0)
        self.input_shape = tuple(int(s) for s in model.input_shape)
        self.lock = threading.Lock()
        model.eval()
        if dims is None and self.latent_dim == 2:
            dims = (0, 1)
        self.plane: Plane = pca_plane(train_codes) if dims is None else axis_plane(train_codes, dims)
        self.ranges = coordinate_ranges(self.plane, train_codes)
        self.x = x
        self.y = None if y is None else torch.as_tensor(y).long().reshape(-1)
        self.codes = self._transform(x, self.y)
        self.coords = to_plane(self.plane, self.codes)
        self.decode_png(0.0, 0.0, label=0 if self.num_classes else None)  # a model that cannot decode a flat code fails here

    # -- the model ----------------------------------------------------------------------------
    def _labels(self, label: Any, n: int) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        if label is None:
            label = 0
        if isinstance(label, float) and label.is_integer():  # 2.0 is class 2; NaN and ±inf are not integers
            label = int(label)
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < self.num_classes:
            raise DataError(f"label must be a class in 0..{self.num_classes - 1}, got {label!r}")
        return torch.full((n,), int(label), dtype=torch.long)

    def _transform(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        with self.lock, torch.inference_mode():
            out = []
            for i in range(0, x.shape[0], 512):
                xb = x[i : i + 512].to(self.model.device)
                yb = None if y is None or not self.num_classes else y[i : i + 512].to(self.model.device)
                out.append(self.model.transform(xb, yb).reshape(xb.shape[0], -1).cpu())
        return torch.cat(out).to(torch.float64)

    def _decode(self, z: torch.Tensor, label: Any = None) -> torch.Tensor:
        y = self._labels(label, z.shape[0])
        with self.lock, torch.inference_mode():
            mean = self.model.decode(z.to(self.model.device, torch.float32), y).mean.cpu()
        if not torch.isfinite(mean).all():
            raise DataError("the decoder gives NaN or infinite values at this point, which is too far from the codes "
                            "(beyond float32's range, or where the network overflows): choose coordinates within the sliders' ranges")
        return mean

    # -- the API ------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What the page needs to draw its controls."""
        h, w = (self.input_shape[-2], self.input_shape[-1]) if len(self.input_shape) >= 2 else (1, self.input_shape[0])
        return {
            "latent_dim": self.latent_dim,
            "plane": self.plane.kind,
            "names": list(self.plane.names),
            "ranges": self.ranges.tolist(),
            "num_classes": self.num_classes,
            "conditional": bool(self.num_classes),
            "labelled": self.y is not None,
            "input_shape": list(self.input_shape),
            "image_size": [h, w],
            "num_points": int(self.coords.shape[0]),
        }

    def points(self) -> dict[str, Any]:
        """The examples' (u, v) and labels (None when the data has none)."""
        return {"u": [round(float(a), 5) for a in self.coords[:, 0]], "v": [round(float(a), 5) for a in self.coords[:, 1]],
                "label": None if self.y is None else self.y.tolist()}

    def decode_png(self, u: float, v: float, rest: Sequence[float] | None = None, label: Any = None) -> tuple[bytes, float]:
        """PNG of E p(x | z) at plane point (u, v, rest), and the milliseconds it took (decode + PNG)."""
        start = time.perf_counter()
        z = to_latent(self.plane, _number(u, "u"), _number(v, "v"), _numbers(rest, "rest"))
        png = render_png(self._decode(z, label), self.input_shape)
        return png, (time.perf_counter() - start) * 1000.0

    def example(self, i: Any) -> dict[str, Any]:
        """Example i's original, its reconstruction E p(x | z_i) at its code z_i, its place and label."""
        i = self._index(i, "example")
        y = None if self.y is None else int(self.y[i])
        original = render_png(self.x[i : i + 1], self.input_shape)
        recon = render_png(self._decode(self.codes[i : i + 1], y if self.num_classes else None), self.input_shape)
        return {"index": i, "u": float(self.coords[i, 0]), "v": float(self.coords[i, 1]), "rest": self.coords[i, 2:].tolist(),
                "label": y, "original": _data_url(original), "reconstruction": _data_url(recon)}

    def interpolate_png(self, i: Any, j: Any, steps: Any = 10, label: Any = None) -> bytes:
        """PNG strip decoding z_i + t (z_j − z_i) for t = 0, 1/(steps−1), …, 1."""
        i, j = self._index(i, "i"), self._index(j, "j")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= MAX_STEPS:
            raise DataError(f"steps must be an integer in 2..{MAX_STEPS}, got {steps!r}")
        t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)[:, None]
        z = self.codes[i] + t * (self.codes[j] - self.codes[i])
        if self.num_classes and label is None:
            label = 0 if self.y is None else int(self.y[i])
        return render_png(self._decode(z, label), self.input_shape, nrow=steps)

    def encode_image(self, data: bytes, label: Any = None) -> dict[str, Any]:
        """An image file's code on the plane and its reconstruction; DataError naming the problem otherwise."""
        array = self._read_image(data)
        x = torch.from_numpy(array).reshape(1, *self.input_shape)
        y = self._labels(label, 1)
        code = self._transform(x, y)
        coords = to_plane(self.plane, code)[0]
        recon = render_png(self._decode(code, None if y is None else int(y[0])), self.input_shape)
        return {"u": float(coords[0]), "v": float(coords[1]), "rest": coords[2:].tolist(), "reconstruction": _data_url(recon)}

    def _read_image(self, data: bytes) -> np.ndarray:
        if len(self.input_shape) not in (2, 3) or (len(self.input_shape) == 3 and self.input_shape[0] not in (1, 3)):
            raise DataError(f"this model takes data of shape {self.input_shape}, not images; encode it from Python")
        channels = self.input_shape[0] if len(self.input_shape) == 3 else 1
        h, w = self.input_shape[-2:]
        if not data:
            raise DataError("the upload is empty: drop a PNG or JPEG image file")
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise DataError(f"the image has far too many pixels and this model takes {w}×{h}: resize it to {w}×{h}") from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise DataError("the file is not an image Pillow can read: drop a PNG or JPEG image file") from None
        if image.size != (w, h):  # checked from the header, before any pixel is decoded
            raise DataError(f"the image is {image.size[0]}×{image.size[1]} pixels and this model takes {w}×{h}: resize it to {w}×{h}")
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I", "F"):
            raise DataError(f"the image has pixel mode {image.mode}; give a grey or RGB image")
        try:
            image.load()
        except (OSError, ValueError):
            raise DataError("the file is not an image Pillow can read: drop a PNG or JPEG image file") from None
        if image.mode.startswith("I;16"):  # 16-bit grey: 65535 is white (Pillow's convert would clip at 255)
            grey = np.asarray(image, dtype=np.float32) / 65535.0
            array = grey if channels == 1 else np.repeat(grey[:, :, None], 3, axis=2)
        else:
            array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
        return array.transpose(2, 0, 1).copy() if channels == 3 else array

    def _index(self, i: Any, what: str) -> int:
        n = int(self.coords.shape[0])
        if isinstance(i, str) and i.isascii() and i.isdigit() and len(i) <= 18:
            i = int(i)
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise DataError(f"{what} must be an example index in 0..{n - 1}, got {i!r}")
        return i


def _number(value: Any, what: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float's range
            number = math.inf
        if math.isfinite(number):
            return number
    raise DataError(f"{what} must be a finite number, got {value!r}")


def _numbers(values: Any, what: str) -> list[float] | None:
    if values is None:
        return None
    if not isinstance(values, list):
        raise DataError(f"{what} must be a list of numbers, got {values!r}")
    return [_number(v, what) for v in values]


# -- HTTP -------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server: "_ExplorerServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — the base class's name
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:  # noqa: N802 — http.server's name
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._post)

    def _answer(self, route: Any) -> None:
        try:
            route(self.path.split("?", 1)[0])
        except _HttpError as e:
            self._json({"error": str(e)}, e.status)
        except (VaekitError, ValueError) as e:
            self._json({"error": str(e).splitlines()[0] if str(e) else type(e).__name__}, HTTPStatus.BAD_REQUEST)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # noqa: BLE001 — one bad request must not stop the server
            self._json({"error": f"internal error: {type(e).__name__}: {e}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own error answers (a malformed request line, a method other than GET or POST,
        a URL too long) as JSON ``{"error": ...}`` like every other error; an unsupported method gets 405."""
        headers = {"Connection": "close"}
        if code == HTTPStatus.NOT_IMPLEMENTED:  # http.server's answer to a method with no do_<METHOD>
            code, headers["Allow"] = HTTPStatus.METHOD_NOT_ALLOWED, "GET, POST"
            message = f"method {self.command} is not served here: use GET or POST"
        self.close_connection = True
        text = message or self.responses.get(code, (f"error {code}",))[0]
        body = b"" if self.command == "HEAD" else json.dumps({"error": text}).encode()
        self.log_error("code %d, message %s", code, text)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _get(self, path: str) -> None:
        explorer = self.server.explorer
        if path in ("/", "/index.html"):
            self._static("explorer.html")
        elif path.startswith("/static/"):
            self._static(path[len("/static/"):])
        elif path == "/api/info":
            self._json(explorer.info())
        elif path == "/api/points":
            self._json(explorer.points())
        elif path.startswith("/api/example/"):
            self._json(explorer.example(path[len("/api/example/"):]))
        else:
            raise _HttpError(HTTPStatus.NOT_FOUND, f"no page or API at {path}")

    def _post(self, path: str) -> None:
        explorer = self.server.explorer
        body = self._body()
        if path == "/api/decode":
            request = _json_body(body)
            png, ms = explorer.decode_png(request.get("u"), request.get("v"), request.get("rest"), request.get("label"))
            self._send(png, "image/png", {"X-Decode-Ms": f"{ms:.2f}"})
        elif path == "/api/interpolate":
            request = _json_body(body)
            self._send(explorer.interpolate_png(request.get("i"), request.get("j"), request.get("steps", 10), request.get("label")), "image/png")
        elif path == "/api/encode":
            query = dict(p.split("=", 1) for p in self.path.split("?", 1)[1].split("&") if "=" in p) if "?" in self.path else {}
            label = query.get("label")
            self._json(explorer.encode_image(body, int(label) if label and label.isdigit() else label))
        else:
            raise _HttpError(HTTPStatus.NOT_FOUND, f"no API at {path}")

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _HttpError(HTTPStatus.BAD_REQUEST, "Content-Length must be a number") from None
        if length > MAX_UPLOAD_BYTES:
            self.close_connection = True
            raise _HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the upload is {length:,} bytes; the limit is {MAX_UPLOAD_BYTES:,}")
        return self.rfile.read(length) if length > 0 else b""

    def _static(self, name: str) -> None:
        if name not in _STATIC:
            raise _HttpError(HTTPStatus.NOT_FOUND, f"no static file {name!r}")
        self._send(resources.files("vaekit.serve").joinpath("static", name).read_bytes(), _STATIC[name])

    def _json(self, value: Any, status: int = HTTPStatus.OK) -> None:
        self._send(json.dumps(value).encode(), "application/json", status=status)

    def _send(self, body: bytes, kind: str, headers: dict[str, str] | None = None, status: int = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body.decode("utf-8") or "null")
    except (UnicodeDecodeError, ValueError, RecursionError):  # not JSON, an integer of thousands of digits, or nested too deep
        raise DataError("the request body must be JSON like {\"u\": 0.5, \"v\": -1.0}") from None
    if not isinstance(value, dict):
        raise DataError("the request body must be a JSON object like {\"u\": 0.5, \"v\": -1.0}")
    return value


class _ExplorerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a port in use must be reported, not shared

    def __init__(self, address: tuple[str, int], explorer: Explorer | None, verbose: bool = False) -> None:
        self.explorer = explorer
        self.verbose = verbose
        super().__init__(address, _Handler)


def make_server(explorer: Explorer | None, port: int = 8000, host: str = "127.0.0.1", verbose: bool = False) -> ThreadingHTTPServer:
    """A ``ThreadingHTTPServer`` serving ``explorer`` on ``host:port`` (port 0: any free port); call ``serve_forever()``.

    Only the loopback interface is served (the API decodes anything it is sent). A port in
    use raises ConfigError naming the port and ``--port``.

    Arguments:
        explorer: the :class:`Explorer` to serve; None binds the port first (so a port in
            use is reported before minutes of encoding) and ``server.explorer`` is set later.
        port: TCP port, 0 for one the system picks (``server.server_address[1]``).
        host: ``"127.0.0.1"`` or ``"localhost"``.
        verbose: log each request on stderr.
    """
    if host not in ("127.0.0.1", "localhost"):
        raise ConfigError(f"the explorer serves only this machine: --host must be 127.0.0.1, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be a TCP port in 0..65535, got {port!r}")
    try:
        return _ExplorerServer(("127.0.0.1", port), explorer, verbose)
    except OSError as e:
        if e.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ConfigError(f"port {port} is in use (another server is running there); choose another with --port") from None
        if e.errno == 13:
            raise ConfigError(f"no permission to serve on port {port}; choose a port above 1023 with --port") from None
        raise
