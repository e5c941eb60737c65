"""``vaekit explore``: the latent explorer, a page on 127.0.0.1 served by :mod:`vaekit.serve`."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from vaekit.cli._common import _eval_data, _int_list, _load_data, _positive_int, _run_settings, _say, add_run_arguments

__all__ = ["add_commands", "MAX_TRAIN_CODES"]

MAX_TRAIN_CODES = 5000
"""Training examples encoded to fix the plane (mean and principal directions): a random subset beyond this."""


def cmd_explore(args: argparse.Namespace) -> int:
    """Encode the run's test examples, serve the explorer page and its API until Ctrl-C."""
    import torch

    from vaekit.errors import ConfigError
    from vaekit.samplers.base import load_run_model
    from vaekit.serve import Explorer, make_server

    if args.dims is not None and len(args.dims) != 2:
        raise ConfigError(f"--dims takes two latent dimensions like 0,1, got {','.join(map(str, args.dims)) or 'none'}")
    model = load_run_model(args.run)  # refuses a run without a decoder (a feature classifier)
    if args.dims is not None and (args.dims[0] == args.dims[1] or not all(0 <= d < model.latent_dim for d in args.dims)):
        raise ConfigError(f"--dims takes two different latent dimensions in 0..{model.latent_dim - 1}, got {args.dims[0]},{args.dims[1]}")
    server = make_server(None, port=args.port, host=args.host, verbose=args.verbose)  # a port in use is reported now
    try:
        torch.set_num_threads(args.threads)
        settings = _run_settings(args.run)
        if args.data:
            settings.update(data=args.data, data_dir=args.data_dir or settings.get("data_dir"))
        _say(args, f"vaekit explore: encoding the data of {args.run} …")
        data, x, _ = _eval_data(args, _run_settings(args.run))
        generator = torch.Generator().manual_seed(args.seed)
        keep = torch.randperm(x.shape[0], generator=generator)[: args.n].sort().values
        train = _load_data(settings, "train")
        pick = torch.randperm(train.x.shape[0], generator=generator)[:MAX_TRAIN_CODES]
        train_y = None if train.y is None or not model.num_classes else torch.as_tensor(train.y)[pick]
        explorer = Explorer(model, _codes(model, train.x[pick], train_y), x[keep],
                            None if data.y is None else torch.as_tensor(data.y)[keep], dims=args.dims)
        server.explorer = explorer
        url = f"http://{args.host}:{server.server_address[1]}/"
        print(url, flush=True)
        _say(args, f"vaekit explore: serving {url} (plane {' × '.join(explorer.plane.names[:2])}, {x[keep].shape[0]} test codes); Ctrl-C stops")
        if not args.no_browser:
            import webbrowser

            webbrowser.open(url)
        server.serve_forever()
    except KeyboardInterrupt:
        print("vaekit explore: stopped", file=sys.stderr)
        return 0
    finally:
        server.server_close()
    return 0


def _codes(model: Any, x: Any, y: Any) -> Any:
    from vaekit.viz import latent_codes

    return latent_codes(model, x, y)


def add_commands(sub: Any) -> dict[str, Callable[..., int]]:
    """Add ``explore``; return its handler."""
    p = add_run_arguments(sub.add_parser("explore", help="the latent explorer: a page on 127.0.0.1 to drag through the latent space"))
    p.add_argument("--port", type=int, default=8000, help="TCP port on 127.0.0.1 (0: any free port; default 8000)")
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost"], help="only this machine is served")
    p.add_argument("--dims", type=_int_list, help="two latent dimensions i,j for the plane (default: 0,1 for D = 2, else the "
                                                  "top two principal directions of the training codes)")
    p.add_argument("-n", type=_positive_int, default=2000, help="test examples drawn on the plane (a random subset; default 2000)")
    p.add_argument("--threads", type=_positive_int, default=2, help="torch threads for decoding (default 2)")
    p.add_argument("--no-browser", action="store_true", help="print the URL, do not open a browser")
    p.add_argument("--verbose", action="store_true", help="log each request on stderr")
    return {"explore": cmd_explore}
