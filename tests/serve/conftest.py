"""The tiny trained run the explorer's tests share (trained once per session: ~1 epoch of digits)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vaekit.cli import main

    out = tmp_path_factory.mktemp("explore") / "run"
    code = main(["train", "vae", "--data", "digits", "--arch", "mlp", "--epochs", "1", "--latent-dim", "3", "--hidden-dims", "16",
                 "--nll-samples", "0", "--quiet", "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def explorer(tiny_run: Path):
    """An :class:`~vaekit.serve.Explorer` over the tiny run: the plane of its training codes, 300 test examples."""
    import vaekit
    from vaekit.data import load_dataset
    from vaekit.serve import Explorer
    from vaekit.viz import latent_codes

    model = vaekit.load(str(tiny_run))
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    return Explorer(model, latent_codes(model, train.x), test.x[:300], test.y[:300])


@pytest.fixture(scope="session")
def server_url(explorer):
    """The explorer served on an ephemeral port in a thread; shut down at the end of the session."""
    import threading

    from vaekit.serve import make_server

    server = make_server(explorer, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
