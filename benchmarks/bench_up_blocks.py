"""Per decoder up block: the factorized block's time / the folded block's, at the TTA's scales (batch 6).

    python benchmarks/bench_up_blocks.py [--runs 11] [--scales 224 256 288]

For each of the four up blocks of the default network (folded, kernels channels-last as the ``fused``
backend stores them) and each scale, the block's inputs are random tensors of the shapes it sees in the
TTA (six views). The plain block and :class:`~monai_mtt.networks.FactorizedUpBlock` (blocks with a skip;
the skip-less last block is factorized here for the comparison only, by giving it a zero skip, which the
backends do not do) are timed alternately, call by call, and the paired median ratio is printed with the
largest output difference. Where onnx and onnxruntime are installed, the same pair is exported and timed in
ONNX Runtime.
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import time
import warnings

import torch

from monai_mtt.networks import FactorizedUpBlock, MTTransUNetInfer, UpBlock, fuse_for_inference
from monai_mtt.networks.backends import onnxruntime_available


def _with_zero_skip(block: UpBlock) -> UpBlock:
    """``block`` (changed in place) with a 1-channel skip whose kernel is zero, so that it can be factorized;
    fed a zero skip it computes the skip-less block's function. Blocks with a skip are returned as they are."""
    if block.skip_channels:
        return block
    conv = block.conv1.conv
    wider = torch.nn.Conv2d(conv.in_channels + 1, conv.out_channels, 3, padding=1)
    with torch.no_grad():
        wider.weight.zero_()
        wider.weight[:, : conv.in_channels] = conv.weight
        wider.bias.copy_(conv.bias)
    block.conv1.conv = wider
    block.skip_channels = 1
    return block


def _paired(a, b, runs: int) -> tuple[float, float, float]:
    ta, tb = [], []
    for i in range(runs):
        for fn, acc in ((a, ta), (b, tb)) if i % 2 else ((b, tb), (a, ta)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb), statistics.median(y / x for x, y in zip(ta, tb))


def _ort(module: torch.nn.Module, args: tuple[torch.Tensor, ...]):
    from monai_mtt.networks.onnx import ort_session

    names = ["x", "skip"][: len(args)]  # the skip-less plain block takes x only
    buf = io.BytesIO()
    small = tuple(a[:1, :, :8, :8] if i == 0 else a[:1, :, :16, :16] for i, a in enumerate(args))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, small, buf, dynamo=False, input_names=names, output_names=["y"], opset_version=17,
            dynamic_axes={k: {0: "b", 2: "h", 3: "w"} for k in names},
        )  # fmt: skip
    session = ort_session(buf.getvalue())
    feed = {k: a.contiguous().numpy() for k, a in zip(names, args)}
    return lambda: session.run(None, feed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=11)
    p.add_argument("--scales", type=int, nargs="+", default=[224, 256, 288])
    args = p.parse_args()
    torch.manual_seed(0)
    folded = fuse_for_inference(MTTransUNetInfer().eval()).to(memory_format=torch.channels_last)  # as `fused`
    ort = onnxruntime_available()
    print(f"threads {torch.get_num_threads()}; batch 6; ratio = factorized / plain time (paired median)")
    with torch.inference_mode():
        for i, block in enumerate(folded.decoder.blocks):
            skipless = not block.skip_channels
            fact = FactorizedUpBlock(_with_zero_skip(copy.deepcopy(block)))
            for s in args.scales:
                n = s // 16 * 2**i
                cl = torch.channels_last
                x = torch.randn(6, block.in_channels, n, n).contiguous(memory_format=cl)
                skip = torch.randn(6, block.skip_channels or 1, 2 * n, 2 * n).contiguous(memory_format=cl)
                plain_args = (x,) if skipless else (x, skip)  # the skip-less block as the backends run it
                if skipless:
                    skip.zero_()
                err = (block(*plain_args) - fact(x, skip)).abs().max().item()
                tp, tf, ratio = _paired(
                    lambda b=block, a=plain_args: b(*a), lambda f=fact, a=(x, skip): f(*a), args.runs
                )
                line = (
                    f"block {i}{' (no skip; not factorized by the backends)' if skipless else ''} at {s}: "
                    f"PyTorch {tp * 1e3:6.1f} -> {tf * 1e3:6.1f} ms, ratio {ratio:.2f} (max |diff| {err:.1e})"
                )
                if ort:
                    op, of, ratio_ort = _paired(_ort(block, plain_args), _ort(fact, (x, skip)), args.runs)
                    line += f"; ONNX Runtime {op * 1e3:6.1f} -> {of * 1e3:6.1f} ms, ratio {ratio_ort:.2f}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
