"""MONAI Label train task: fine-tune the bundle's network on the labels saved in the datastore.

Built on MONAI Label's ``BundleTrainTask`` (which runs the bundle's ``train`` config through
``monai.bundle.run("run", ...)`` with ``train#dataset#data``, ``validate#dataset#data``,
``train#trainer#max_epochs``, ``device`` and ``train#handlers`` overridden). On top of it:

* ``datalists`` is overridden, so the bundle's ``dataset_dir`` (the embedded ISIC-2017 sample when
  empty) is not read: training and validation come from the Label datalist (image + label; the
  items have no ``class``, which ``EnsureClassd`` turns into -1 and the loss skips). The unlabeled
  (classification-only) pool is the bundle's own ``unlabeled_dir`` (empty by default -> labeled
  stream alone). ``val_split: -1`` keeps the bundle's own datalists (``dataset_dir``) instead.
* With ``val_split`` leaving no validation item (one or few labels) the training items are validated
  on, so ``BestCheckpoint`` still writes ``models/model.pt``.
* Each run writes its training state under ``runs/monailabel/<time>`` (``output_dir``), so the
  bundle's ``LatestCheckpoint`` never resumes an earlier run's trainer.
* ``models/model.json`` (the best score of an earlier run, measured on another validation set) is
  moved into that folder first, so the fine-tuned weights are saved at their first validation.
* ``pretrained: false`` (or no ``models/model.pt``) trains from the bundle's initialisation instead of
  crashing as 0.8.5 does.
* Request options ``epoch_length`` (iterations per epoch), ``image_size``, ``batch_size``,
  ``num_workers`` and ``learning_rate`` map onto the bundle's top-level ids.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Any, ClassVar

from monailabel.interfaces.datastore import Datastore
from monailabel.tasks.train.bundle import BundleTrainTask

from monai_mtt.apps.monailabel.validate import validate_train_request

__all__ = ["MTTTrainTask", "label_datalists"]

logger = logging.getLogger(__name__)


def label_datalists(train: list, val: list, unlabeled_dir: str | None) -> dict[str, list]:
    """``datalists`` for a Label run: its train/val items and the bundle's classification-only pool."""
    unlabeled: list = []
    if unlabeled_dir:
        from monai_mtt.data import read_isic_additional

        unlabeled = read_isic_additional(unlabeled_dir)
    logger.info(f"MONAI Label datalists: train {len(train)}, val {len(val)}, unlabeled {len(unlabeled)}")
    return {"train": list(train), "val": list(val), "unlabeled": unlabeled}


class MTTTrainTask(BundleTrainTask):
    """``BundleTrainTask`` for the MT-TransUNet bundle (see the module docstring)."""

    OPTION_IDS: ClassVar[dict[str, str | tuple[str, ...]]] = {
        "epoch_length": "val_interval",
        "image_size": "image_size",
        "batch_size": ("batch_size_labeled", "batch_size_unlabeled", "batch_size_val"),
        "num_workers": "num_workers",
        "learning_rate": "learning_rate",
    }

    def __init__(self, path: str, conf: dict[str, str], **kwargs: Any) -> None:
        kwargs.setdefault("load_strict", True)
        super().__init__(os.path.abspath(path), conf, **kwargs)
        self._request: dict[str, Any] = {}
        self._val: list = []

    def config(self) -> dict[str, Any]:
        c = super().config()
        c.update({"max_epochs": 10, "val_split": 0.2, "epoch_length": 100})
        c.update({"image_size": 224, "batch_size": 4, "num_workers": 2})
        return c

    def validate_request(self, params: dict[str, Any], server_keys: bool = False) -> dict[str, Any]:
        """The typed, bounded train options of a request (:func:`.validate.validate_train_request`).

        No value that reaches the bundle's config parser is a client string: numbers are numbers,
        the device comes from a fixed set, ``model_filename`` is a ``.pt`` name in ``models/``.
        """
        from monailabel.utils.others.generic import device_map

        models = os.path.join(self.bundle_path, "models")
        files = [f for f in os.listdir(models) if f.endswith(".pt")] if os.path.isdir(models) else []
        return validate_train_request(params, device_map().keys(), files, server_keys=server_keys)

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict:
        # validated again here: the task runs in MONAI Label's subprocess, which any /train caller reaches
        request = self.validate_request(request, server_keys=True)
        request.setdefault("run_id", "run")
        request.setdefault("tracking", "None")
        self._request = dict(request)
        return super().__call__(request, datastore)

    def _partition_datalist(self, datalist, request, shuffle=False):
        train, val = super()._partition_datalist(datalist, request, shuffle=shuffle)
        if val is not None and not val:
            logger.info("no validation item left by val_split: validating on the training items")
            val = list(train)
        if not train:
            raise ValueError("no labeled image in the datastore: save at least one label before training")
        self._val = val if val is not None else []
        return train, val

    def _load_checkpoint(self, model_pytorch, pretrained, train_handlers):
        pretrained = str(pretrained).lower() not in ("false", "0", "no", "none")
        if pretrained and model_pytorch and os.path.exists(model_pytorch):
            super()._load_checkpoint(model_pytorch, pretrained, train_handlers)
        else:
            logger.info(f"not loading a checkpoint (pretrained={pretrained}, {model_pytorch})")
            train_handlers[:] = [h for h in train_handlers if h.get("_target_") != "CheckpointLoader"]

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        r = self._request
        for option, ids in self.OPTION_IDS.items():
            if r.get(option) not in (None, ""):
                value = float(r[option]) if option == "learning_rate" else int(r[option])
                for key in ids if isinstance(ids, tuple) else (ids,):
                    overrides[key] = value
        epoch_length = int(overrides.get("val_interval") or self.bundle_config.get_parsed_content("val_interval"))
        overrides["max_iterations"] = int(overrides["train#trainer#max_epochs"]) * epoch_length

        out_dir = os.path.join(self.bundle_path, "runs", "monailabel", time.strftime("%Y%m%d-%H%M%S"))
        os.makedirs(out_dir, exist_ok=True)
        overrides["output_dir"] = out_dir
        overrides["ckpt_dir"] = os.path.join(self.bundle_path, "models")  # the model the infer task serves
        overrides["keep_previous_model"] = False  # fine-tuning refines models/model.pt in place
        best_info = os.path.join(self.bundle_path, "models", "model.json")
        if os.path.isfile(best_info):
            shutil.move(best_info, os.path.join(out_dir, "previous_model.json"))

        if "validate#dataset#data" in overrides:  # a split of the Label datalist (val_split >= 0)
            unlabeled_dir = None
            if self.bundle_config.get("unlabeled_dir"):
                unlabeled_dir = self.bundle_config.get_parsed_content("unlabeled_dir")
            overrides["datalists"] = label_datalists([], [], unlabeled_dir)
        shown = {k: v for k, v in overrides.items() if not k.endswith("#data") and k != "datalists"}
        logger.info(f"MT-TransUNet train overrides: {shown}")
        return overrides
