"""MONAI Label app for the MT-TransUNet bundle (2D RGB dermoscopy: lesion mask + 3 classes).

    python -m monai_mtt.apps.monailabel start_server --app monai_mtt/apps/monailabel --studies IMAGES \\
        --conf bundle /path/to/bundle [--conf model_name mt_transunet] [--conf preload true]
        [--conf model_file model.int8.onnx]

(``python -m monai_mtt.apps.monailabel`` is ``monailabel`` with ``--host 127.0.0.1`` as the default.)

Conf keys: ``bundle`` (default: :func:`monai_mtt.bundle.default_bundle`, i.e. ``$MONAI_MTT_BUNDLE``,
else the bundle this installation carries), ``model_name`` (``mt_transunet``: ``/infer/mt_transunet``,
``/train/mt_transunet``), ``model_file`` (the weights in the bundle's ``models/`` folder that
``/infer`` runs: ``model.pt`` by default, or an exported ``model.onnx`` / ``model.int8.onnx``, which
need onnxruntime), ``scales`` / ``views`` (default TTA, comma-separated), ``preload``,
``allow_remote`` (``true`` lets the server listen on a non-loopback address with MONAI Label's
auth off, e.g. behind an authenticating reverse proxy).

Security: image ids and label tags are plain names (:class:`.datastore.PlainNameDatastore`); request
values are validated before any task sees them (:mod:`.validate`, :mod:`.guards`); only datastore
images and uploads are read, and an image above the pixel limit
(:func:`monai_mtt.transforms.io.max_image_pixels`) is refused from its header with HTTP 413.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import tempfile

from fastapi import HTTPException
from monailabel.config import settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask

import monai_mtt
from monai_mtt.apps.monailabel.datastore import PlainNameDatastore, http_error
from monai_mtt.apps.monailabel.infer_task import MTTInferTask
from monai_mtt.apps.monailabel.train_task import MTTTrainTask
from monai_mtt.apps.monailabel.validate import InvalidRequest, check_name
from monai_mtt.bundle import default_bundle
from monai_mtt.transforms.io import ImageTooLargeError, check_image_file
from monai_mtt.utils import parse_list

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ["*.jpg", "*.jpeg", "*.png", "*.bmp", "*.JPG", "*.JPEG", "*.PNG", "*.BMP"]


def server_host(argv: list[str] | None = None) -> str | None:
    """The address ``monailabel start_server`` was told to listen on (its default 0.0.0.0), else None."""
    argv = sys.argv if argv is None else argv
    if "start_server" not in argv:
        return None
    for i, arg in enumerate(argv):
        if arg in ("--host", "-i") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--host="):
            return arg.split("=", 1)[1]
    return "0.0.0.0"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_upload(path: str) -> bool:
    """A file MONAI Label's endpoints wrote for this request (a ``tmp*`` file in the temp folder) or a session image."""
    real = os.path.realpath(path)
    if os.path.dirname(real) == os.path.realpath(tempfile.gettempdir()) and os.path.basename(real).startswith("tmp"):
        return True
    sessions = settings.MONAI_LABEL_SESSION_PATH
    return bool(sessions) and real.startswith(os.path.realpath(sessions) + os.sep)


class MyApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]):
        self.mtt_bundle = os.path.abspath(conf.get("bundle") or default_bundle())
        self.model_name = conf.get("model_name", "mt_transunet")
        self.model_file = conf.get("model_file") or "model.pt"
        try:
            check_name(self.model_file, "model_file")  # the request parameters' plain-name rule
        except InvalidRequest as e:
            raise ValueError(
                f"--conf model_file: {e.reason}; give a file name in the bundle's models/ folder "
                "(e.g. model.pt or model.int8.onnx), not a path."
            ) from None
        if not os.path.isfile(os.path.join(self.mtt_bundle, "configs", "metadata.json")):
            raise FileNotFoundError(f"no bundle at {self.mtt_bundle} (pass --conf bundle <dir>)")
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="MT-TransUNet dermoscopy",
            description="Skin lesion segmentation and nevus / melanoma / seborrheic keratosis classification",
            version=monai_mtt.__version__,
            labels={"lesion": 1},
        )

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        exts = list(dict.fromkeys(IMAGE_EXTENSIONS + list(settings.MONAI_LABEL_DATASTORE_FILE_EXT)))
        return PlainNameDatastore(
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
            model_filename=self.model_file,
            preload=str(self.conf.get("preload", "false")).lower() == "true",
        )
        if not task.is_valid():
            logger.warning(
                f"{self.mtt_bundle}/models/{self.model_file} is missing: /infer/{self.model_name} fails until it exists"
            )
        return {self.model_name: task}

    def init_trainers(self) -> dict[str, TrainTask]:
        return {self.model_name: MTTTrainTask(self.mtt_bundle, self.conf)}

    def on_init_complete(self) -> None:
        """Server start-up: refuse an open bind without auth, then put the request guards in front."""
        host = server_host()
        if host is not None and not is_loopback(host) and not settings.MONAI_LABEL_AUTH_ENABLE:
            if str(self.conf.get("allow_remote", "false")).lower() != "true":
                raise RuntimeError(
                    f"refusing to serve on {host} with MONAI Label's auth off: anyone who can reach this port "
                    "could upload files and start training. Use --host 127.0.0.1 (the default of "
                    "`python -m monai_mtt.apps.monailabel`), or turn auth on (MONAI_LABEL_AUTH_ENABLE=true), "
                    "or put an authenticating reverse proxy in front and pass --conf allow_remote true "
                    "(docs/monailabel.md, 'Exposing the server')."
                )
            logger.warning(f"serving on {host} with auth off (allow_remote): keep it behind an authenticating proxy")
        super().on_init_complete()
        app = sys.modules.get("monailabel.app")
        if app is not None:
            from monai_mtt.apps.monailabel.guards import install_guards

            install_guards(app.app)

    def infer(self, request, datastore=None):
        """Run an infer task on a datastore image or an upload only, after checking its size from the header.

        Refused with a 4xx (no traceback): an image that is neither a datastore id nor a file the
        endpoint wrote for this request (404), an image above the pixel limit (413), a file that is
        not an image or a bad option (422).
        """
        ds = datastore if datastore else self.datastore()
        request = dict(request)
        image = request.get("image")
        try:
            if isinstance(image, str):
                if os.path.isabs(image) or os.sep in image:
                    if not (os.path.isfile(image) and _is_upload(image)):
                        reason = "only images in the datastore (or an uploaded file) are read"
                        raise InvalidRequest("image", reason, 404)
                    path = image
                else:
                    path = ds.get_image_uri(check_name(image, "image"))
                    if not path:
                        raise InvalidRequest("image", f"'{image}' is not in the datastore", 404)
                    request["image"] = path
                try:
                    check_image_file(path)
                except ImageTooLargeError as e:
                    shown = f"'{image}'" if not os.path.isabs(image) else "the uploaded image"
                    detail = "parameter 'image': " + str(e).replace(str(path), shown, 1)
                    raise HTTPException(status_code=413, detail=detail) from None
                except OSError as e:
                    raise InvalidRequest("image", f"is not a readable image ({type(e).__name__})") from None
            elif image is not None:
                raise InvalidRequest("image", f"must be an image id, got {type(image).__name__}")
            return super().infer(request, ds)
        except InvalidRequest as e:
            raise http_error(e) from None
        except ImageTooLargeError as e:
            raise HTTPException(status_code=413, detail=str(e)) from None
