"""Where a Deploy run's bundle configs and weights come from: ``-m MODEL`` (and ``--bundle``) resolved.

Needs no Deploy SDK; the bundle itself is read by :func:`monai_mtt.apps.bundle_loader.load_app_bundle`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from monai_mtt.apps.bundle_loader import has_embedded_configs
from monai_mtt.networks.checkpoint import is_torchscript

__all__ = ["MODEL_SUFFIXES", "ModelSource", "resolve_model"]

#: the model files a model folder is searched for: TorchScript, checkpoints, ONNX (float or int8; needs onnxruntime)
MODEL_SUFFIXES = (".ts", ".pt", ".pth", ".onnx")


def _is_bundle_dir(path: Path) -> bool:
    return (path / "configs" / "metadata.json").is_file()


@dataclass
class ModelSource:
    """Where the configs and the weights come from."""

    config_source: Path  # a bundle directory or a TorchScript file with embedded configs
    checkpoint: Path  # TorchScript file, or weights ({"model": state_dict} or a state dict)


def resolve_model(model_path: str | os.PathLike | None, bundle_dir: str | os.PathLike | None = None) -> ModelSource:
    """Find the bundle configs and the weights from ``-m`` (and ``--bundle``).

    ``model_path`` may be:

    * a TorchScript file (``ckpt_export``'s ``model.ts``); its embedded configs are used, or those of
      ``bundle_dir`` when it has none;
    * a bundle directory (``configs/metadata.json``; weights ``models/model.ts`` or ``models/model.pt``);
    * a weights file (``{"model": state_dict}`` or a state dict) for ``bundle_dir``'s network, or an ONNX
      export of it (``model.onnx``, or ``model.int8.onnx`` from ``monai-mtt quantize``; run by onnxruntime);
    * a folder holding exactly one of these (how a MAP lays out ``/opt/holoscan/models``).
    """
    bundle = Path(bundle_dir).expanduser().resolve() if bundle_dir else None
    if bundle is not None and not _is_bundle_dir(bundle):  # only an error where the bundle's configs are needed
        bundle_error = f"--bundle {bundle}: not a bundle directory (no configs/metadata.json)."
        bundle = None
    else:
        bundle_error = None
    if not model_path:
        if bundle is None:
            no_model = "no model: pass -m MODEL (model.ts, a bundle directory or a checkpoint)."
            raise FileNotFoundError(bundle_error or no_model)
        model_path = bundle
    path = Path(model_path).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"model path {path} does not exist.")
    if path.is_dir() and not _is_bundle_dir(path):
        found = []
        for root, dirs, files in os.walk(path, followlinks=True):
            if len(Path(root).relative_to(path).parts) >= 4:
                dirs.clear()  # a model folder is shallow; do not wander
            found += [Path(root) / f for f in sorted(files) if Path(f).suffix in MODEL_SUFFIXES]
            if _is_bundle_dir(Path(root)):
                found.append(Path(root) / "configs" / "metadata.json")
        bundles = {p.parent.parent for p in found if p.name == "metadata.json"}
        if len(bundles) == 1:
            path = bundles.pop()
        elif len(found) == 1:
            path = found[0]
        else:
            raise FileNotFoundError(
                f"model folder {path} must hold one bundle directory or one model file, "
                f"found {[str(p) for p in found]}."
            )
    if path.is_dir():
        for name in ("model.ts", "model.pt"):
            if (path / "models" / name).is_file():
                return ModelSource(path, path / "models" / name)
        raise FileNotFoundError(f"bundle {path} has no models/model.ts or models/model.pt.")
    if is_torchscript(path) and has_embedded_configs(path):
        return ModelSource(path, path)
    if bundle is None:
        hint = (
            f"{path} carries no bundle configs: pass --bundle BUNDLE_DIR (the folder with configs/metadata.json), "
            "or export with `python -m monai.bundle ckpt_export ... --config_file configs/inference.yaml`."
        )
        raise FileNotFoundError(f"{bundle_error} {hint}" if bundle_error else hint)
    return ModelSource(bundle, path)
