"""The application commands of ``vaekit``: ``compress``, ``classify``, ``anomaly``, ``denoise``.

Each takes a run folder written by ``vaekit train`` (or ``model.save`` plus, optionally,
the run's ``train.yaml``), uses the run's data unless ``--data`` says otherwise, prints
its results as JSON on stdout (a short table on stderr unless ``--quiet``), and writes
PNGs and a JSON copy of the results to ``--out`` (default ``RUN/<command>``).

Data: sources with a test split (fashion-mnist, digits) fit on the training split and
evaluate on the test split; other sources (CSV, .npy, image folders) are split at random
(``--eval-fraction``, seeded). ``vaekit.cli.main`` wires these in
through :func:`add_commands`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable


from vaekit.cli._common import _binarized, _count, _has_test_split, _int_list, _load_data, _positive_int, _run_settings, check_out_dir

__all__ = ["add_commands"]


# -- shared helpers ---------------------------------------------------------------------------
def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder written by `vaekit train` (or model.save)")
    p.add_argument("--data", help="data to use instead of the run's own: fashion-mnist, digits, or a path")
    p.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--label-column", help="label column of a CSV table (name or index)")
    p.add_argument("--binarize", choices=["none", "static"], help="binarise the data once (default: as the run was trained)")
    p.add_argument("--limit", type=_positive_int, help="evaluate on at most N examples")
    p.add_argument("--fit-limit", type=_positive_int, help="fit on at most N examples")
    p.add_argument("--eval-fraction", type=float, help="held-out share for data without a test split (default 0.3)")
    p.add_argument("--batch-size", type=_positive_int, default=500)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", help="folder for PNGs and results (default RUN/<command>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no table on stderr")


def _load_run(args: argparse.Namespace):
    """The run's model, once ``--eval-fraction`` and ``--out`` are checked (nothing is written before)."""
    import vaekit
    from vaekit.errors import ConfigError

    if args.eval_fraction is not None and not 0 < args.eval_fraction < 1:
        raise ConfigError(f"--eval-fraction must lie in (0, 1), got {args.eval_fraction}")
    if args.out is not None:
        check_out_dir(args.out)
    return vaekit.load(args.run, device=args.device)


def _splits(args: argparse.Namespace):
    """(fit set, evaluation set, description) from the run's data settings and the flags."""
    from vaekit.data import Dataset, train_val_split
    from vaekit.errors import ConfigError

    settings = _run_settings(args.run)
    for key in ("data", "data_dir", "label_column"):
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    if _has_test_split(settings["data"]):
        if args.eval_fraction is not None:
            raise ConfigError(f"--eval-fraction splits data without a test split, and {settings['data']} has one (fit on train, "
                              "evaluate on test); drop --eval-fraction")
        fit, ev = _load_data(settings, "train"), _load_data(settings, "test")
        where = f"{settings['data']}: fit on train, evaluate on test"
    else:
        fraction = 0.3 if args.eval_fraction is None else args.eval_fraction
        fit, ev = train_val_split(_load_data(settings, "train"), fraction, seed=args.seed)
        where = f"{settings['data']}: random split, {fraction:g} held out for evaluation"
    binarize = args.binarize or settings.get("binarize", "none")
    fit = Dataset(_binarized(fit.x, {"binarize": binarize}, seed=1), fit.y, name=fit.name)
    ev = Dataset(_binarized(ev.x, {"binarize": binarize}, seed=0), ev.y, name=ev.name)
    return fit, ev, where


def _limit(data, n: int | None):
    return data if not n else data[: int(n)]


def _out_dir(args: argparse.Namespace, command: str) -> Path:
    out = Path(args.out) if args.out else Path(args.run) / command
    out.mkdir(parents=True, exist_ok=True)
    return out


def _finish(args: argparse.Namespace, out: Path, command: str, result: dict[str, Any], table: list[str]) -> int:
    from vaekit._io import atomic_write_text

    result = {"run": str(args.run), **result}
    path = out / f"{command}.json"
    result["files"] = {**result.get("files", {}), "results": str(path)}
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    if not args.quiet:
        print("\n".join(table), file=sys.stderr, flush=True)
    print(json.dumps(result, indent=2))
    return 0


def _need_labels(data, command: str) -> None:
    from vaekit.errors import DataError

    if data.y is None or data.y.is_floating_point():
        raise DataError(
            f"`vaekit {command}` needs class labels, and {data.name or 'the data'} has none "
            "(use a labelled dataset, or a CSV with --label-column)"
        )


# -- compress ---------------------------------------------------------------------------------
def cmd_compress(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from vaekit.apps import Compressor, compare_with_pca
    from vaekit.errors import ConfigError
    from vaekit.viz import plot_lines, save_image_rows

    model = _load_run(args)
    fit, ev, where = _splits(args)
    fit, ev = _limit(fit, args.fit_limit), _limit(ev, args.limit)
    bits = None if args.bits == 0 else args.bits
    if bits is not None and not 1 <= bits <= 32:
        raise ConfigError(f"--bits must be in 1..32 (0 for float32 codes), got {args.bits}")
    report = compare_with_pca(model, fit.x, ev.x, bits=bits, dims=args.dims, batch_size=args.batch_size)
    compressor = Compressor(model, bits=bits, batch_size=args.batch_size).fit(fit.x)
    codes = compressor.transform(ev.x)
    out = _out_dir(args, "compress")  # once every argument has been used: a refused one leaves no folder
    np.save(out / "codes.npy", codes.numpy())
    d = report["latent_dim"]
    dims = sorted(report["pca_curve"])
    model_series = [report["model_mse_float"] if n == d else float("nan") for n in dims]
    files = {"codes": str(out / "codes.npy")}
    files["error_vs_dimension"] = str(plot_lines(
        dims, {"PCA": [report["pca_curve"][n] for n in dims], f"{model.config.get('model')} (D={d})": model_series},
        out / "error_vs_dimension.png", xlabel="code dimension (components)", ylabel="test MSE per value",
        title="Reconstruction error against code size", logy=True))
    n = min(args.n, len(ev))
    if n:
        from sklearn.decomposition import PCA

        flat = fit.x.flatten(1).double().numpy()
        pca = PCA(n_components=report["pca_components"], svd_solver="full").fit(flat)
        shown = ev.x[:n]
        pca_rec = torch.from_numpy(pca.inverse_transform(pca.transform(shown.flatten(1).double().numpy()))).float().view_as(shown)
        files["reconstructions"] = str(save_image_rows(
            [shown, compressor.inverse_transform(codes[:n]), pca_rec], out / "reconstructions.png",
            labels=["original", f"{model.config.get('model')}", f"PCA ({report['pca_components']})"]))
    label = f"{bits}-bit" if bits else "float32"
    table = [
        f"compression of {len(ev)} examples ({where})",
        f"  code: {d} dims x {label} = {report['bits_per_code']} bits (ratio {report['compression_ratio']:.1f}x vs 8-bit values)",
        f"  {'method':<24}{'test MSE per value':>20}",
        f"  {model.config.get('model', 'model') + ' (' + label + ')':<24}{report['model_mse']:>20.6f}",
        f"  {model.config.get('model', 'model') + ' (float)':<24}{report['model_mse_float']:>20.6f}",
        f"  {'PCA ' + str(report['pca_components']) + ' (float)':<24}{report['pca_mse']:>20.6f}",
    ]
    if "pca_mse_quantized" in report:
        table.append(f"  {'PCA ' + str(report['pca_components']) + ' (' + label + ')':<24}{report['pca_mse_quantized']:>20.6f}")
    return _finish(args, out, "compress", {"data": where, "num_fit": len(fit), "num_eval": len(ev), **report, "files": files}, table)


# -- classify ---------------------------------------------------------------------------------
def cmd_classify(args: argparse.Namespace) -> int:
    from vaekit.apps import compare_latent_classification
    from vaekit.viz import plot_bars

    model = _load_run(args)
    fit, ev, where = _splits(args)
    fit, ev = _limit(fit, args.fit_limit), _limit(ev, args.limit)
    _need_labels(fit, "classify")
    _need_labels(ev, "classify")
    report = compare_latent_classification(model, fit.x, fit.y, ev.x, ev.y, k=args.k, batch_size=args.batch_size)
    out = _out_dir(args, "classify")  # once every argument has been used: a refused one leaves no folder
    acc = report["accuracy"]
    d = report["latent_dim"]
    names = {"latent": f"{model.config.get('model')} codes ({d})", "raw": "raw inputs", "pca": f"PCA codes ({report['pca_components']})"}
    files = {"accuracy": str(plot_bars({names[k]: v for k, v in acc.items()}, out / "accuracy.png", ylabel="test accuracy",
                                       title=f"{args.k}-NN accuracy"))}
    table = [f"{args.k}-NN classification, {report['num_train']} train / {report['num_test']} test ({where})",
             *(f"  {names[k]:<28}{v:>8.4f}" for k, v in acc.items())]
    return _finish(args, out, "classify", {"data": where, **report, "files": files}, table)


# -- anomaly ----------------------------------------------------------------------------------
def _anomaly_classes(fit, ev, normal: list[int] | None, anomalous: list[int] | None) -> tuple[list[int], list[int]]:
    import torch

    from vaekit.errors import ConfigError

    present = sorted(int(c) for c in torch.cat([fit.y, ev.y]).unique())
    if normal is None and anomalous is None:
        if present != [0, 1]:
            raise ConfigError(
                f"give --normal-class and/or --anomaly-class (the labels are {present}); "
                "a table labelled 0 (normal) / 1 (anomalous), or a run trained with --exclude-classes, needs neither"
            )
        return [0], [1]
    normal = normal if normal is not None else [c for c in present if c not in anomalous]
    anomalous = anomalous if anomalous is not None else [c for c in present if c not in normal]
    if set(normal) & set(anomalous):
        raise ConfigError(f"classes {sorted(set(normal) & set(anomalous))} are both normal and anomalous")
    for name, classes in (("--normal-class", normal), ("--anomaly-class", anomalous)):
        missing = [c for c in classes if c not in present]
        if missing or not classes:
            raise ConfigError(f"{name} {classes}: classes {missing or 'none'} do not occur in the data (labels: {present})")
    return normal, anomalous


def cmd_anomaly(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from vaekit.apps import AnomalyDetector
    from vaekit.viz import plot_roc, plot_score_histograms, save_image_grid

    from vaekit.errors import ConfigError

    if args.num_samples is not None and args.score == "reconstruction":
        raise ConfigError("--num-samples sets the samples of --score elbo or log_likelihood, and the reconstruction score "
                          "draws none; drop --num-samples or choose --score elbo")
    model = _load_run(args)
    fit, ev, where = _splits(args)
    _need_labels(fit, "anomaly")
    _need_labels(ev, "anomaly")
    if args.normal_class is None and args.anomaly_class is None:  # the classes the run was trained without
        args.anomaly_class = _run_settings(args.run).get("exclude_classes") or None
    normal, anomalous = _anomaly_classes(fit, ev, args.normal_class, args.anomaly_class)
    fit_normal = _limit(fit[torch.isin(fit.y, torch.tensor(normal))], args.fit_limit)
    keep = torch.isin(ev.y, torch.tensor(normal + anomalous))
    ev = _limit(ev[keep], args.limit)
    is_anomaly = torch.isin(ev.y, torch.tensor(anomalous)).long()
    detector = AnomalyDetector(model, score=args.score, quantile=args.quantile, false_positive_rate=args.fpr,
                               num_samples=args.num_samples, batch_size=args.batch_size, seed=args.seed)
    detector.fit(fit_normal.x)
    report = detector.evaluate(ev.x, is_anomaly)
    scores, labels = report.pop("scores"), report.pop("labels")
    out = _out_dir(args, "anomaly")
    files = {
        "roc": str(plot_roc(labels, scores, out / "roc.png")),
        "histograms": str(plot_score_histograms(scores[labels == 0], scores[labels == 1], out / "score_histograms.png",
                                                threshold=detector.threshold_)),
    }
    if len(model.input_shape) == 3:
        top = np.argsort(-scores)[:32]
        files["most_anomalous"] = str(save_image_grid(ev.x[torch.from_numpy(top.copy())], out / "most_anomalous.png", nrow=8))
    c = report["confusion"]
    table = [
        f"anomaly detection, score={args.score} ({where}); normal classes {normal}, anomalous {anomalous}",
        f"  threshold {report['threshold']:.6g} = quantile {report['quantile']:g} of {len(fit_normal)} normal fit scores",
        f"  AUROC {report['auroc']:.4f}   average precision {report['average_precision']:.4f}",
        f"  confusion at the threshold ({report['num_normal']} normal, {report['num_anomalous']} anomalous):",
        "                  predicted normal  predicted anomalous",
        f"    normal        {c['true_negatives']:>16}  {c['false_positives']:>19}",
        f"    anomalous     {c['false_negatives']:>16}  {c['true_positives']:>19}",
    ]
    return _finish(args, out, "anomaly", {"data": where, "normal_classes": normal, "anomaly_classes": anomalous,
                                          "num_fit": len(fit_normal), **report, "files": files}, table)


# -- denoise ----------------------------------------------------------------------------------
def cmd_denoise(args: argparse.Namespace) -> int:
    from vaekit.apps import Denoiser
    from vaekit.data import parse_noise
    from vaekit.viz import save_image_rows

    noise, level = parse_noise(args.noise)
    model = _load_run(args)
    # Like with like: the noise is added to the clean images that PSNR/SSIM compare against.
    # A run trained on binarised data still denoises grey images (its decoder mean is a grey
    # intensity), so unless --binarize static asks for binary images both sides stay grey.
    args.binarize = args.binarize or "none"
    fit, ev, where = _splits(args)
    fit, ev = _limit(fit, args.fit_limit), _limit(ev, args.limit)
    denoiser = Denoiser(model, noise=noise, noise_level=level, seed=args.seed, batch_size=args.batch_size).fit(fit.x)
    report = denoiser.evaluate(ev.x)
    noisy, denoised = report.pop("noisy"), report.pop("denoised")
    out = _out_dir(args, "denoise")
    n = min(args.n, len(ev))
    files = {"rows": str(save_image_rows([noisy[:n], denoised[:n], ev.x[:n]], out / "denoise.png",
                                         labels=["noisy", "denoised", "clean"]))}

    def fmt(v: float | None) -> str:
        return "   n/a" if v is None else f"{v:>8.4f}"

    clean = "binarised" if args.binarize == "static" else "grey (not binarised)"
    compared = (f"PSNR and SSIM of the noisy input and of the denoised output, each against the clean {clean} images "
                f"the {noise}:{level:g} noise was added to")
    report["compared"] = compared
    table = [
        f"denoising {len(ev)} examples with {noise}:{level:g} noise ({where})",
        f"  {compared}",
        f"  {'':<10}{'PSNR (dB)':>10}{'SSIM':>10}",
        f"  {'noisy':<10}{report['psnr_noisy']:>10.3f}{fmt(report['ssim_noisy']):>10}",
        f"  {'denoised':<10}{report['psnr_denoised']:>10.3f}{fmt(report['ssim_denoised']):>10}",
    ]
    return _finish(args, out, "denoise", {"data": where, **report, "files": files}, table)


# -- wiring -----------------------------------------------------------------------------------
def add_commands(subparsers: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add ``compress``, ``classify``, ``anomaly`` and ``denoise`` to ``subparsers``; return their handlers."""
    p = subparsers.add_parser("compress", help="codes, reconstructions, bits per code, error; comparison with PCA")
    _add_run_arguments(p)
    p.add_argument("--bits", type=int, default=8, help="bits per code dimension (0: float32 codes)")
    p.add_argument("--dims", type=_int_list, help="PCA sizes for the error-vs-dimension curve (default: powers of two up to 2D)")
    p.add_argument("-n", type=_count, default=8, help="examples drawn in reconstructions.png")

    p = subparsers.add_parser("classify", help="k-NN on latent codes vs raw inputs and PCA codes")
    _add_run_arguments(p)
    p.add_argument("-k", type=_positive_int, default=5, help="neighbours")

    p = subparsers.add_parser("anomaly", help="anomaly detection: AUROC, average precision, confusion, ROC and histograms")
    _add_run_arguments(p)
    p.add_argument("--normal-class", type=_int_list, help="labels of normal data, e.g. 0,1 (default: all but --anomaly-class)")
    p.add_argument("--anomaly-class", type=_int_list,
                   help="labels of anomalies (default: all but --normal-class, or the run's --exclude-classes)")
    p.add_argument("--score", choices=["reconstruction", "elbo", "log_likelihood"], default="reconstruction")
    p.add_argument("--quantile", type=float, help="threshold at this quantile of normal scores (default 0.95)")
    p.add_argument("--fpr", type=float, help="or: target false-positive rate on normal data")
    p.add_argument("--num-samples", type=_positive_int, help="samples per example for elbo (10) / log_likelihood (100)")

    p = subparsers.add_parser("denoise", help="corrupt, denoise, PSNR and SSIM before and after (on grey images unless --binarize static)")
    _add_run_arguments(p)
    p.add_argument("--noise", default="gaussian:0.3", help="NAME:LEVEL: gaussian:0.3, mask:0.25, salt_pepper:0.1")
    p.add_argument("-n", type=_count, default=8, help="examples drawn in denoise.png")

    return {"compress": cmd_compress, "classify": cmd_classify, "anomaly": cmd_anomaly, "denoise": cmd_denoise}
