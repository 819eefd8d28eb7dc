"""INT8 (ONNX Runtime static QDQ) vs fp32: forward latency and accuracy with the TTA on.

    python benchmarks/bench_int8.py --authors-repo PATH --checkpoint MODEL.pt \
        --calibration_dir TRAINING_ROOT [--num_layers 4] [--image_size 128] [--num_images 64]

(a) Speed: batch-1 224x224 forward of the int8 model, of our fp32 ONNX Runtime model and (with
    ``--authors-repo``) of the authors' fp32 network at random init, in one process, alternating
    run by run; medians and ratios (the issue's target: int8 <= 0.40x the authors' fp32).
(b) Accuracy: the checkpoint is quantized, calibrated on ``--num_images`` images of the TRAINING split
    of ``--calibration_dir`` at ``--image_size``, and both models are evaluated with
    :class:`~monai_mtt.inferers.MultiScaleTTAInferer` (``--scales``, all six views, probability
    ensemble) on the embedded sample's ISIC-2017 Test_v2 images (``--eval_dir`` to use another root's
    test split): JA (ISIC mean Jaccard), M/K AUC, and per-image agreement of the int8 and fp32 masks.
    The gate: int8 is shipped as an option only if JA drops by at most 0.5 points.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import authors_model
from monai_mtt.data import evaluation_items
from monai_mtt.inferers import MultiScaleTTAInferer
from monai_mtt.metrics import SegmentationReport, isic2017_classification_scores
from monai_mtt.networks import MTTransUNet, load_checkpoint
from monai_mtt.networks.onnx import OnnxRuntimeNetwork, export_onnx, ort_session
from monai_mtt.networks.quantize import calibration_items, export_int8_onnx
from monai_mtt.transforms import LoadDermoscopyd


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def no_spinning(net: OnnxRuntimeNetwork, threads: int) -> OnnxRuntimeNetwork:
    """``net`` with a session of ``threads`` intra-op threads whose idle threads sleep (no busy-waiting)."""
    net.session = ort_session(net.path, threads, spinning=False)
    return net


def speed(models: dict, size: int, runs: int) -> dict[str, float]:
    """Median batch-1 forward seconds per model, calls interleaved model by model in every round."""
    x = torch.rand(1, 3, size, size)
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for _ in range(2):
            for fn in models.values():
                fn(x)
        for _ in range(runs):
            for name, fn in models.items():
                t0 = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def evaluate(network, items: list[dict], tta: MultiScaleTTAInferer) -> dict:
    """Masks, class probabilities, JA (mean per-image Jaccard) and M/K AUC of ``network`` on ``items``."""
    load = LoadDermoscopyd()
    report = SegmentationReport()
    masks, probs, labels = {}, [], []
    for it in items:
        d = load({"image": it["image"], "label": it["label"]})
        out = tta(d["image"].as_tensor()[None], network)
        mask = out["seg"][0].argmax(0).numpy().astype(bool)
        masks[it["id"]] = mask
        report.update(mask, d["label"].as_tensor()[0].numpy() > 0.5, it["id"])
        probs.append(out["cls"][0].numpy())
        labels.append(int(it["class"]))
    cls = isic2017_classification_scores(np.stack(probs), np.array(labels))
    return {"masks": masks, "JA": report.aggregate()["mean"]["JA"], "M_AUC": cls["M_AUC"], "K_AUC": cls["K_AUC"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--authors-repo", default=None)
    p.add_argument("--checkpoint", required=True, help="a model trained on real data (model.pt)")
    p.add_argument("--num_layers", type=int, default=4)
    p.add_argument("--calibration_dir", required=True, help="dataset root whose TRAINING images calibrate")
    p.add_argument("--num_images", type=int, default=64)
    p.add_argument("--calibrate_methods", nargs="+", default=["minmax"], choices=["minmax", "percentile", "entropy"],
                   help="one int8 model per calibration method, each timed and evaluated")
    p.add_argument("--image_size", type=int, default=128, help="the checkpoint's training size (calibration size)")
    p.add_argument("--scales", type=int, nargs="+", default=[128, 144, 160], help="TTA scales (for 128-px training)")
    p.add_argument("--eval_dir", default="", help="root whose test split is evaluated (default: embedded sample)")
    p.add_argument("--size", type=int, default=224, help="side of the timed forward")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-accuracy", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_int8_"))
    authors = authors_model(args.authors_repo, img_size=args.size)
    if authors is not None:  # alone, before any export or ONNX Runtime session exists in this process
        alone = speed({"authors": authors}, args.size, 5)["authors"]
        print(f"authors fp32 alone, before the exports: {alone * 1e3:.1f} ms (load {_load()})")
    net = load_checkpoint(MTTransUNet(num_layers=args.num_layers), args.checkpoint).eval()
    calib = calibration_items(args.calibration_dir, args.num_images)
    fp32_path = export_onnx(net, tmp / "model.onnx", image_size=args.image_size)
    fp32 = no_spinning(OnnxRuntimeNetwork(fp32_path), args.threads)
    print(f"calibration: {len(calib)} training images of {args.calibration_dir} at {args.image_size} px; "
          f"fp32 file {fp32_path.stat().st_size / 1e6:.0f} MB")
    int8s = {}
    for method in args.calibrate_methods:
        t0 = time.perf_counter()
        path = export_int8_onnx(net, tmp / f"model.{method}.int8.onnx", calib, image_size=args.image_size,
                                calibrate_method=method)
        int8s[f"int8 {method}"] = no_spinning(OnnxRuntimeNetwork(path), args.threads)
        print(f"  int8 ({method}): export + quantization {time.perf_counter() - t0:.0f} s, "
              f"{path.stat().st_size / 1e6:.0f} MB")

    models = {**int8s, "fp32 ORT": fp32}
    if authors is not None:
        models["authors fp32"] = authors
    print(f"\n(a) forward 1x3x{args.size}x{args.size}, {args.threads} threads, {args.runs} alternating rounds; "
          f"load average before: {_load()}")
    t = speed(models, args.size, args.runs)
    for k, v in t.items():
        print(f"  {k:18s} {v * 1e3:7.1f} ms")
    for k in int8s:
        print(f"  {k} / fp32 ORT     = {t[k] / t['fp32 ORT']:.2f}x")
        if authors is not None:
            print(f"  {k} / authors fp32 = {t[k] / t['authors fp32']:.2f}x   (target <= 0.40x)")
    print(f"  load average after: {_load()}")
    if args.skip_accuracy:
        return

    items = evaluation_items(args.eval_dir or None, split="test")
    tta = MultiScaleTTAInferer(scales=args.scales)
    print(f"\n(b) accuracy on {len(items)} held-out test images, TTA scales {tuple(args.scales)} x 6 views")
    res = {name: evaluate(m, items, tta) for name, m in {"fp32": fp32, **int8s}.items()}
    for name, r in res.items():
        print(f"  {name:15s} JA {100 * r['JA']:.2f}  M_AUC {100 * r['M_AUC']:.2f}  K_AUC {100 * r['K_AUC']:.2f}")
    for name in int8s:
        drop = 100 * (res["fp32"]["JA"] - res[name]["JA"])
        agree, jac = [], []
        for k, a in res["fp32"]["masks"].items():
            b = res[name]["masks"][k]
            agree.append(100 * float((a == b).mean()))
            union = np.logical_or(a, b).sum()
            jac.append(100 * float(np.logical_and(a, b).sum() / union) if union else 100.0)
        print(f"  {name} vs fp32 masks, per image: pixel agreement % min {min(agree):.2f} median "
              f"{np.median(agree):.2f}; Jaccard % min {min(jac):.2f} median {np.median(jac):.2f}")
        verdict = "PASS (ship as an option)" if drop <= 0.5 else "FAIL (do not ship)"
        print(f"  {name}: JA drop {drop:+.2f} points (gate <= 0.5): {verdict}")


if __name__ == "__main__":
    main()
