"""Request guards in front of MONAI Label's ``/infer/{model}`` and ``/train/{model}`` endpoints.

MONAI Label 0.8.5 hands a ``/train`` request to a subprocess and answers 200 before the task reads
it, and answers every error inside ``/infer`` with a bare 500. The guards validate the request in
the server first (:mod:`.validate`: allow-listed keys, typed and bounded values, images only from
the datastore) and answer a bad one with a 4xx naming the parameter; a valid request goes on to
MONAI Label's own endpoint function with the validated values. The tasks validate again where they
run (``/batch/infer`` and a ``/train`` started another way reach them without the guards).

:func:`install_guards` puts the routes first in the FastAPI app's routing table; the app calls it at
the end of its start-up (``on_init_complete``, server mode only). This module has no
``from __future__ import annotations``: FastAPI reads the endpoint annotations at run time.
"""

import json
import logging
from typing import Optional

from fastapi import BackgroundTasks, Depends, File, Form, HTTPException, UploadFile
from fastapi.routing import APIRoute
from monailabel.config import settings
from monailabel.endpoints import infer as infer_endpoint
from monailabel.endpoints import train as train_endpoint
from monailabel.endpoints.user.auth import RBAC, User
from monailabel.interfaces.utils.app import app_instance

from monai_mtt.apps.monailabel.datastore import http_error
from monai_mtt.apps.monailabel.validate import InvalidRequest, check_name

__all__ = ["install_guards"]

logger = logging.getLogger(__name__)


def _task(tasks: dict, model: str):
    task = tasks.get(model)
    if task is None:
        raise HTTPException(status_code=404, detail=f"parameter 'model': no model '{model[:60]}' (see /info/)")
    return task


async def guarded_infer(
    background_tasks: BackgroundTasks,
    model: str,
    image: str = "",
    session_id: str = "",
    params: str = Form("{}"),
    file: UploadFile = File(None),
    label: UploadFile = File(None),
    output: Optional[infer_endpoint.ResultType] = None,
    user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER)),
):
    instance = app_instance()
    task = _task(instance._infers, model)
    try:
        try:
            p = json.loads(params) if params else {}
        except json.JSONDecodeError as e:
            raise InvalidRequest("params", f"is not valid JSON ({e.msg} at position {e.pos})") from None
        clean = task.validate_request(p) if hasattr(task, "validate_request") else p
        if session_id:
            check_name(session_id, "session_id")
        if not file and not session_id:
            if not image:
                raise InvalidRequest("image", "give an image id from the datastore or upload a file")
            check_name(image, "image")
            if not instance.datastore().get_image_uri(image):
                raise InvalidRequest("image", f"'{image}' is not in the datastore", 404)
    except InvalidRequest as e:
        raise http_error(e) from None
    return infer_endpoint.run_inference(
        background_tasks, model, image, session_id, json.dumps(clean), file, label, output
    )


async def guarded_train(
    model: str,
    params: Optional[dict] = None,
    run_sync: Optional[bool] = False,
    enqueue: Optional[bool] = False,
    user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ADMIN)),
):
    task = _task(app_instance()._trainers, model)
    try:
        clean = task.validate_request(params or {}) if hasattr(task, "validate_request") else params
    except InvalidRequest as e:
        raise http_error(e) from None
    return train_endpoint.run_model(model, clean, run_sync, enqueue)


async def refuse_train_all(user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ADMIN))):
    raise HTTPException(status_code=405, detail="POST /train/ (all models, deprecated) is off: use /train/{model}")


def install_guards(app) -> int:
    """Put the guarded routes first in ``app``'s routing table; returns how many were added."""
    prefix = settings.MONAI_LABEL_API_STR
    routes = [
        APIRoute(f"{prefix}/infer/{{model}}", guarded_infer, methods=["POST"], tags=["Infer"]),
        APIRoute(f"{prefix}/train/{{model}}", guarded_train, methods=["POST"], tags=["Train"]),
        APIRoute(f"{prefix}/train/", refuse_train_all, methods=["POST"], include_in_schema=False),
    ]
    if any(getattr(r, "endpoint", None) is guarded_infer for r in app.router.routes):
        return 0
    app.router.routes[0:0] = routes
    logger.info("MT-TransUNet request guards installed on /infer/{model}, /train/{model}")
    return len(routes)
