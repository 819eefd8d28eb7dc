"""Same function as the authors' network: their MT-TransUNet vs ours loaded through convert_authors_state_dict.

    python benchmarks/compare_authors.py --authors-repo PATH_TO_MT-TransUNet_CHECKOUT
    python benchmarks/compare_authors.py --authors-repo PATH --write-manifest MANIFEST
    (MANIFEST: tests/data/authors_state_dict_manifest.json, the file tests/test_networks_authors.py reads)

Builds the authors' released network (``model/networks/vit_seg_modeling_combine.py``, R50-ViT-B_16,
``n_skip=3``; random init, eval mode; their repository is imported from PATH, never copied), saves its
state dict as their training code does (``DataParallel``: ``module.`` prefix), converts it with
:func:`monai_mtt.networks.convert_authors_state_dict`, loads it strictly into :class:`MTTransUNet` and
prints the largest absolute difference of each output on the same random batch at 224x224 and 288x288:

* ``seg`` mask logits and ``lsf`` (tanh) level set, ``(B, 2|1, H, W)``; ``cls`` class logits ``(B, 3)``;
* ``attn``: the cls token's attention in the LAST block, heads averaged, over the segmentation
  tokens only, divided by its sum. Theirs is row 0, columns 1: of ``attn_weights[-1].mean(1)`` (cls
  first); ours is ``return_attention=True`` (cls last, eq. 9 renormalisation). Both are the same
  softmax row with the cls entry dropped, so they agree token for token.

Two weight settings are compared: their own initialisation ("init": the cls token is zero, norms are
1/0, BatchNorm statistics 0/1), and the same with every norm scale and shift, BatchNorm running
statistic, bias, the cls token and the unused positional embedding randomised ("perturbed"), so that
no identity default hides a mismatch. The exit status is 1 when any difference exceeds ``--tol`` (1e-4).

``--write-manifest FILE`` instead writes the key names and shapes of their state dict (the committed
``tests/data/authors_state_dict_manifest.json`` that the CI tests of the converter read).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from _common import authors_model
from monai_mtt.networks import MTTransUNet, convert_authors_state_dict


def perturb_(net: torch.nn.Module, seed: int = 1) -> None:
    """Randomise, in place, every tensor that their initialisation sets to a constant."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if not t.is_floating_point():
                continue  # num_batches_tracked
            r = torch.randn(t.shape, generator=g)
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith(("cls_token", "position_embeddings")):
                t.copy_(r)
            elif t.ndim == 1 and name.endswith("weight"):  # GroupNorm / LayerNorm / BatchNorm scale
                t.copy_(1.0 + 0.2 * r)
            elif t.ndim == 1:  # biases, norm shifts, running means
                t.copy_(0.2 * r)


def compare(theirs: torch.nn.Module, ours: torch.nn.Module, size: int, batch: int) -> dict[str, tuple[float, float]]:
    """Per output: (max |theirs - ours|, max |theirs|) on one random batch in [0, 1] (their 1/255 scaling)."""
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        seg, lsf, cls, attn_weights, _ = theirs(x)
        out = ours(x, return_attention=True)
    a = attn_weights[-1].mean(dim=1)[:, 0, 1:]  # cls query row, heads averaged, seg tokens only
    a = (a / a.sum(dim=1, keepdim=True)).view_as(out["attn"])
    ref = {"seg": seg, "lsf": lsf, "cls": cls, "attn": a}
    return {k: ((v - out[k]).abs().max().item(), v.abs().max().item()) for k, v in ref.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--authors-repo", required=True, help="a checkout of JingyeChen/MT-TransUNet (root or model/)")
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 288])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--write-manifest", default=None, metavar="FILE", help="write their key names and shapes and exit")
    args = p.parse_args()

    theirs = authors_model(args.authors_repo, 224)  # img_size only sizes the unused positional embedding
    if args.write_manifest:
        source = (
            "JingyeChen/MT-TransUNet @ a42e4d6, model/networks/vit_seg_modeling_combine.py "
            "VisionTransformer(CONFIGS['R50-ViT-B_16'], img_size=224, num_classes=2), n_skip=3"
        )
        keys = {k: list(v.shape) for k, v in theirs.state_dict().items()}
        lines = [f"  {json.dumps(k)}: {json.dumps(s)}" for k, s in keys.items()]  # one key per line
        text = (
            f'{{\n "source": {json.dumps(source)},\n "saved_prefix": "module.",\n "keys": {{\n'
            + ",\n".join(lines)
            + "\n }\n}\n"
        )
        assert json.loads(text)["keys"] == keys
        Path(args.write_manifest).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write_manifest).write_text(text)
        print(f"wrote {len(keys)} keys to {args.write_manifest}")
        return

    worst = 0.0
    for setting in ("init", "perturbed"):
        if setting == "perturbed":
            perturb_(theirs)
        saved = {f"module.{k}": v.clone() for k, v in theirs.state_dict().items()}  # as their engine.py saves
        ours = MTTransUNet().eval()
        ours.load_state_dict(convert_authors_state_dict(saved), strict=True)
        for size in args.sizes:
            diffs = compare(theirs, ours, size, args.batch)
            worst = max([worst] + [d for d, _ in diffs.values()])
            cells = "  ".join(f"{k} {d:.2e} (of {m:.3g})" for k, (d, m) in diffs.items())
            print(f"{setting:9s} {size}x{size} max|theirs-ours|: {cells}")
    ok = worst <= args.tol
    print(f"largest difference {worst:.2e}: {'OK' if ok else 'FAIL'} (tolerance {args.tol:g})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
