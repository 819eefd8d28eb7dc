"""Batch-1 CPU latency of the plain forward and of the full 18-view TTA, TTA vs naive loop, TTA memory.

    python benchmarks/bench_inference.py [--authors-repo PATH] [--runs 3] [--skip-memory]

Prints, for our eager (fused) network and for the ONNX Runtime path (``monai_mtt.networks.onnx``,
when onnxruntime is installed): the 224x224 forward and the 3-scale x 6-view TTA of one 767x1022
image (the size of an ISIC image) at the original resolution; the speed-up of the batched TTA over a
per-view loop; with ``--authors-repo``, the authors' 18-view TTA (their network, one batch of six
views per scale) and the ratios; and the peak resident memory of one TTA call on a 3000x2000 image,
measured in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from _common import authors_model, median_time
from monai_mtt.inferers import VIEWS, MultiScaleTTAInferer, apply_view, invert_view
from monai_mtt.networks import MTTransUNetInfer, fuse_for_inference

SCALES = (224, 256, 288)


def naive_tta(net, image):
    """One forward per view (what the batched inferer avoids)."""
    h, w = image.shape[-2:]
    acc = 0
    for s in SCALES:
        xs = F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        for v in VIEWS:
            out = net.outputs(apply_view(xs, v), False)
            acc = acc + F.interpolate(invert_view(out["seg"].softmax(1), v), size=(h, w), mode="bilinear")
    return acc


def authors_tta(theirs, image):
    """The authors' procedure: resize to each scale, six views in one batch, one forward per scale."""
    outs = []
    for s in SCALES:
        xs = F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False)
        batch = torch.cat([apply_view(xs, v) for v in VIEWS])
        mask, *_ = theirs(batch)
        outs.append(F.interpolate(mask, size=(224, 224), mode="bicubic", align_corners=False))
    return outs


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(size: tuple[int, int]) -> None:
    """Run in a fresh process: peak RSS before and after one TTA call on an image of ``size``."""
    net = fuse_for_inference(MTTransUNetInfer().eval())
    image = torch.rand(1, 3, *size)
    before = _peak_rss_mb()
    with torch.inference_mode():
        MultiScaleTTAInferer()(image, net)
    print(f"{_peak_rss_mb() - before:.0f} {_peak_rss_mb():.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--authors-repo", default=None)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--memory-probe", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_probe:
        memory_probe(tuple(args.memory_probe))
        return
    torch.manual_seed(0)
    net = fuse_for_inference(MTTransUNetInfer().eval())
    x224 = torch.rand(1, 3, 224, 224)
    image = torch.rand(1, 3, 767, 1022)
    tta = MultiScaleTTAInferer()
    paths = {"ours eager (fused)": net}
    try:
        from monai_mtt.networks.onnx import OnnxRuntimeNetwork, export_onnx

        onnx_path = os.path.join(tempfile.mkdtemp(), "mtt.onnx")
        export_onnx(net, onnx_path)
        paths["ours ONNX Runtime"] = OnnxRuntimeNetwork(onnx_path)
    except ImportError as e:
        print(f"(ONNX Runtime path skipped: {e})")
    theirs = authors_model(args.authors_repo)
    results: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        ref = tta(image, net)
        for name, model in paths.items():
            t0 = time.perf_counter()
            out = tta(image, model)  # first call: warm-up (ONNX Runtime allocates its arena)
            print(f"{name}: first TTA call {time.perf_counter() - t0:.1f} s")
            err = (out["seg"] - ref["seg"]).abs().max().item()
            fwd = (lambda m=model: m.outputs(x224, False)) if hasattr(model, "outputs") else (lambda m=model: m(x224))
            results[name] = {
                "forward": median_time(fwd, runs=args.runs * 3, warmup=1)[0],
                "tta": median_time(lambda m=model: tta(image, m), runs=args.runs, warmup=1)[0],
            }
            print(f"{name:24s} forward {results[name]['forward'] * 1e3:7.1f} ms   18-view TTA "
                  f"{results[name]['tta']:6.2f} s   max |TTA - eager TTA| {err:.1e}")
        naive = median_time(lambda: naive_tta(net, image), runs=args.runs, warmup=1)[0]
        print(f"naive per-view loop (eager) TTA {naive:6.2f} s -> batched TTA speed-up "
              f"{naive / results['ours eager (fused)']['tta']:.2f}x")
        if theirs is not None:
            t_fwd = median_time(lambda: theirs(x224), runs=args.runs * 3, warmup=1)[0]
            t_tta = median_time(lambda: authors_tta(theirs, image), runs=args.runs, warmup=1)[0]
            print(f"{'authors code':24s} forward {t_fwd * 1e3:7.1f} ms   18-view TTA {t_tta:6.2f} s")
            for name, r in results.items():
                print(f"ratio {name} / authors: forward {r['forward'] / t_fwd:.3f}   TTA {r['tta'] / t_tta:.3f}")
    if not args.skip_memory:
        res = subprocess.run([sys.executable, __file__, "--memory-probe", "2000", "3000"], capture_output=True,
                             text=True, check=True)
        growth, peak = res.stdout.split()
        print(f"TTA on a 3000x2000 image: the call adds {growth} MB to the peak resident memory (limit 1500 MB); "
              f"process peak {peak} MB including Python, torch and the network")


if __name__ == "__main__":
    main()
