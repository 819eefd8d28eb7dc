"""One loader for the apps: a bundle -> the inference network, the TTA settings and the class names.

The MONAI Label app (:mod:`monai_mtt.apps.monailabel`) and the MONAI Deploy app
(:mod:`monai_mtt.apps.deploy`) both serve a bundle through :func:`load_app_bundle`, so they read the
same configs the same way, build the network in one place (:meth:`AppBundle.network`, which calls
:func:`monai_mtt.networks.load_inference_network` as the bundle's own ``network`` id in
``inference.yaml`` does) and run the same test-time augmentation (:meth:`AppBundle.inferer`).

A bundle is either a folder (``configs/metadata.json`` and ``configs/inference.yaml``, else
``configs/train.yaml``) or a TorchScript file written by ``python -m monai.bundle ckpt_export``, which
embeds ``metadata.json`` and ``inference.json`` in its ``extra/`` folder.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from monai.bundle import ConfigParser
from torch import nn

from monai_mtt import CLASS_NAMES
from monai_mtt.inferers import MultiScaleTTAInferer
from monai_mtt.inferers.views import VIEWS
from monai_mtt.networks.backends import BACKENDS

__all__ = ["DEFAULT_SCALES", "AppBundle", "has_embedded_configs", "load_app_bundle", "read_bundle_config"]

logger = logging.getLogger(__name__)

#: the paper's TTA scales, used when the bundle's config does not name any.
DEFAULT_SCALES = (224, 256, 288)
#: the configs searched for ``network_def``, in order.
CONFIG_NAMES = ("inference", "train")
_CONFIG_EXTENSIONS = (".yaml", ".yml", ".json")


def _embedded(names: Sequence[str], filename: str) -> str | None:
    """The archive member ``<root>/extra/<filename>`` (case-insensitive), or None."""
    return next((n for n in names if n.lower().endswith("extra/" + filename)), None)


def has_embedded_configs(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip archive (a TorchScript export) with ``extra/metadata.json`` and an inference config."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    has_inference = any(_embedded(names, "inference" + ext) for ext in _CONFIG_EXTENSIONS)
    return _embedded(names, "metadata.json") is not None and has_inference


def _load_text(text: str, filename: str) -> Any:
    return json.loads(text) if filename.lower().endswith(".json") else yaml.safe_load(text)


def read_bundle_config(source: str | os.PathLike, config_names: Sequence[str] = CONFIG_NAMES) -> ConfigParser:
    """The bundle's first config among ``config_names`` that defines ``network_def``, with its metadata.

    Args:
        source: a bundle folder (``configs/metadata.json``; ``bundle_root`` is set to it) or a
            TorchScript file with embedded configs (``ckpt_export``).
        config_names: config names without extension, tried in order.

    Raises:
        FileNotFoundError: ``source`` has no metadata, or none of ``config_names`` with a ``network_def``.
    """
    source = Path(source)
    found: list[tuple[str, Any]] = []  # (where, content) of each config present
    if source.is_dir():
        meta_file = source / "configs" / "metadata.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{source} is not a bundle folder: it has no configs/metadata.json.")
        metadata = json.loads(meta_file.read_text())
        for name in config_names:
            for ext in _CONFIG_EXTENSIONS:
                path = source / "configs" / (name + ext)
                if path.is_file():
                    found.append((str(path), ConfigParser.load_config_file(str(path))))
                    break
    else:
        if not has_embedded_configs(source):
            raise FileNotFoundError(
                f"{source} carries no bundle configs (extra/metadata.json and extra/inference.json): export it with "
                "`python -m monai.bundle ckpt_export ... --config_file configs/inference.yaml`, "
                "or give the bundle folder."
            )
        with zipfile.ZipFile(source) as z:
            names = z.namelist()
            metadata_member = _embedded(names, "metadata.json")
            if metadata_member is None:  # unreachable: has_embedded_configs found it
                raise FileNotFoundError(f"{source} carries no extra/metadata.json.")
            metadata = json.loads(z.read(metadata_member))
            for name in config_names:
                member = next(filter(None, (_embedded(names, name + ext) for ext in _CONFIG_EXTENSIONS)), None)
                if member is not None:
                    found.append((f"{source}:{member}", _load_text(z.read(member).decode(), member)))
    for _, content in found:
        if isinstance(content, dict) and "network_def" in content:
            parser = ConfigParser()
            parser.read_meta(metadata)
            parser.read_config(content)
            if source.is_dir():
                parser["bundle_root"] = str(source)
            return parser
    raise FileNotFoundError(
        f"{source}: no config among {list(config_names)} defines 'network_def' (read: {[w for w, _ in found]})."
    )


def _option(parser: ConfigParser, key: str) -> Any:
    """The parsed value of the bundle's top-level ``key``, or None where it is absent or cannot be evaluated here."""
    if parser.get(key) is None:
        return None
    try:
        return parser.get_parsed_content(key, instantiate=True)
    except Exception as e:  # noqa: BLE001 - a bundle option we cannot evaluate here is not fatal
        logger.warning(f"cannot evaluate bundle option '{key}' ({e}); using the default")
        return None


def _class_names(metadata: dict) -> list[str]:
    """Class names in index order from the metadata's ``probabilities`` output, else :data:`monai_mtt.CLASS_NAMES`."""
    outputs = metadata.get("network_data_format", {}).get("outputs", {})
    cls_out = next((o for o in outputs.values() if o.get("type") == "probabilities"), None) or {}
    channel_def = cls_out.get("channel_def") or {}
    if not channel_def:
        return list(CLASS_NAMES)
    return [str(channel_def[k]) for k in sorted(channel_def, key=int)]


@dataclass
class AppBundle:
    """What an app needs from a bundle: its network, its TTA settings and its class names.

    Attributes:
        source: the bundle folder or TorchScript file the configs were read from.
        parser: the bundle config (``network_def``, ``scales``, ...), metadata under ``_meta_``.
        scales: default TTA scales (the config's ``scales``, else :data:`DEFAULT_SCALES`).
        views: default TTA views (the config's ``views``, else all of :data:`monai_mtt.inferers.views.VIEWS`).
        ensemble: how the views are combined (the config's ``tta_ensemble``, else ``"probabilities"``).
        class_names: class names in index order (from the metadata).
        backend: how the weights are run (:data:`monai_mtt.networks.backends.BACKENDS`): the environment
            variable ``MONAI_MTT_BACKEND`` where set, else the config's ``inference_backend``, else ``"auto"``.
    """

    source: Path
    parser: ConfigParser
    scales: list[int]
    views: list[str]
    ensemble: str
    class_names: list[str]
    backend: str = "auto"

    @property
    def metadata(self) -> dict[str, Any]:
        """The bundle's ``metadata.json``."""
        return dict(self.parser.get("_meta_") or {})

    @property
    def version(self) -> str:
        """The bundle's model version (``metadata.json``'s ``version``)."""
        return str(self.metadata.get("version", ""))

    def default_device(self) -> torch.device:
        """The config's ``device`` (``cuda:0`` where available in our bundle), else the CPU."""
        device = _option(self.parser, "device")
        return torch.device(device) if device is not None else torch.device("cpu")

    def network(self, checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
        """The network to infer with, in eval mode on ``device``: the one place the apps build it.

        Args:
            checkpoint: weights for the bundle's ``network_def`` (``{"model": state_dict}``), a TorchScript
                ``model.ts`` or an ONNX file (see :func:`monai_mtt.networks.load_inference_network`).
            device: where to run it.
        """
        from monai_mtt.networks import load_inference_network

        network_def = self.parser.get_parsed_content("network_def", instantiate=True)
        return load_inference_network(network_def, checkpoint, device, backend=self.backend).eval()

    def inferer(
        self, scales: Sequence[int] | None = None, views: Sequence[str] | None = None, return_attention: bool = False
    ) -> MultiScaleTTAInferer:
        """The bundle's multi-scale TTA inferer; ``scales`` / ``views`` (when given) override the bundle's."""
        return MultiScaleTTAInferer(
            scales=list(scales) if scales else self.scales,
            views=list(views) if views else self.views,
            return_attention=return_attention,
            ensemble=self.ensemble,
        )


def load_app_bundle(source: str | os.PathLike, config_names: Sequence[str] = CONFIG_NAMES) -> AppBundle:
    """Read a bundle for an app: configs, default TTA settings and class names (see :class:`AppBundle`).

    Args:
        source: a bundle folder or a TorchScript file with embedded configs (``ckpt_export``).
        config_names: the configs searched for ``network_def``, in order.
    """
    parser = read_bundle_config(source, config_names)
    scales = _option(parser, "scales")
    views = _option(parser, "views")
    ensemble = _option(parser, "tta_ensemble")
    backend = os.environ.get("MONAI_MTT_BACKEND") or _option(parser, "inference_backend") or "auto"
    if backend not in BACKENDS:
        raise ValueError(
            f"backend {backend!r} (MONAI_MTT_BACKEND or the bundle's inference_backend) is not one of {BACKENDS}."
        )
    meta = parser.get("_meta_") or {}
    return AppBundle(
        source=Path(source),
        parser=parser,
        scales=[int(s) for s in scales] if scales else list(DEFAULT_SCALES),
        views=[str(v) for v in views] if views else list(VIEWS),
        ensemble=str(ensemble) if ensemble else "probabilities",
        class_names=_class_names(meta),
        backend=str(backend),
    )
