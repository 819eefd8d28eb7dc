"""MONAI Label app for the MT-TransUNet bundle (2D RGB dermoscopy: lesion mask + 3 classes).

    monailabel start_server --app monai_mtt/apps/monailabel --studies IMAGES \\
        --conf bundle /path/to/bundle [--conf model_name mt_transunet] [--conf preload true]

Conf keys: ``bundle`` (default: the repository's ``bundle/`` next to the package, else
``$MONAI_MTT_BUNDLE``), ``model_name`` (``mt_transunet``: ``/infer/mt_transunet``,
``/train/mt_transunet``), ``scales`` / ``views`` (default TTA, comma-separated), ``preload``.
"""

from __future__ import annotations

import logging
import os

from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

from monai_mtt.apps.monailabel.infer_task import MTTInferTask, parse_list
from monai_mtt.apps.monailabel.train_task import MTTTrainTask

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ["*.jpg", "*.jpeg", "*.png", "*.bmp", "*.JPG", "*.JPEG", "*.PNG", "*.BMP"]


def default_bundle() -> str:
    env = os.environ.get("MONAI_MTT_BUNDLE")
    if env:
        return env
    repo_bundle = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "bundle"))
    return repo_bundle


class MyApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]):
        self.mtt_bundle = os.path.abspath(conf.get("bundle") or default_bundle())
        self.model_name = conf.get("model_name", "mt_transunet")
        if not os.path.isfile(os.path.join(self.mtt_bundle, "configs", "metadata.json")):
            raise FileNotFoundError(f"no bundle at {self.mtt_bundle} (pass --conf bundle <dir>)")
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="MT-TransUNet dermoscopy",
            description="Skin lesion segmentation and nevus / melanoma / seborrheic keratosis classification",
            version="0.1.0",
            labels={"lesion": 1},
        )

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        exts = list(dict.fromkeys(IMAGE_EXTENSIONS + list(settings.MONAI_LABEL_DATASTORE_FILE_EXT)))
        return LocalDatastore(
            self.studies,
            extensions=exts,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def init_infers(self) -> dict[str, InferTask]:
        task = MTTInferTask(
            self.mtt_bundle,
            scales=parse_list(self.conf.get("scales"), int) or None,
            views=parse_list(self.conf.get("views")) or None,
            preload=str(self.conf.get("preload", "false")).lower() == "true",
        )
        if not task.is_valid():
            logger.warning(
                f"{self.mtt_bundle}/models/model.pt is missing: /infer/{self.model_name} fails until it exists"
            )
        return {self.model_name: task}

    def init_trainers(self) -> dict[str, TrainTask]:
        return {self.model_name: MTTTrainTask(self.mtt_bundle, self.conf)}
