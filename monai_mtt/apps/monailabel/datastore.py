"""MONAI Label's ``LocalDatastore`` with plain names only: no upload or label lands outside the studies folder.

The stock datastore joins image ids and label tags from the URL into paths
(``PUT /datastore/image?image=../../x`` wrote outside the studies folder). Here every id and tag is
checked by :func:`~monai_mtt.apps.monailabel.validate.check_name` (no separators, no ``..``, not
absolute) and an upload's extension must be one of the datastore's image extensions; anything else
is answered with HTTP 422 naming the parameter. Lookups of an unknown id answer as the stock
datastore does.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import HTTPException
from monailabel.datastore.local import LocalDatastore

from monai_mtt.apps.monailabel.validate import InvalidRequest, check_name

__all__ = ["PlainNameDatastore", "http_error"]


def http_error(e: InvalidRequest) -> HTTPException:
    """The HTTP answer for a refused request value (its status and message; no traceback)."""
    return HTTPException(status_code=e.status, detail=str(e))


def _name(value: Any, param: str) -> str:
    try:
        return check_name(value, param)
    except InvalidRequest as e:
        raise http_error(e) from None


class PlainNameDatastore(LocalDatastore):
    """``LocalDatastore`` whose image ids, label ids and tags must be plain names (see the module docstring)."""

    def _ext(self, filename: str, param: str) -> None:
        _, ext = self._to_id(os.path.basename(filename))
        allowed = sorted({e.replace("*", "").lower() for e in self._extensions})
        if ext.lower() not in allowed:
            reason = f"file type '{ext[:20]}' is not accepted (allowed: {', '.join(allowed)})"
            raise http_error(InvalidRequest(param, reason))

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        self._ext(image_filename, "file")
        image_id = image_id or self._to_id(os.path.basename(image_filename))[0]
        return super().add_image(_name(image_id, "image"), image_filename, image_info)

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        self._ext(label_filename, "label")
        return super().save_label(_name(image_id, "image"), label_filename, _name(label_tag, "tag"), label_info)

    def remove_image(self, image_id: str) -> None:
        return super().remove_image(_name(image_id, "id"))

    def remove_label(self, label_id: str, label_tag: str) -> None:
        return super().remove_label(_name(label_id, "id"), _name(label_tag, "tag"))

    def get_image_uri(self, image_id: str) -> str:
        return super().get_image_uri(_name(image_id, "image"))

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        return super().get_label_uri(_name(label_id, "label"), _name(label_tag, "tag"))

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        return super().get_image_info(_name(image_id, "image"))

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        return super().get_label_info(_name(label_id, "label"), _name(label_tag, "tag"))

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        return super().update_image_info(_name(image_id, "image"), info)

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        return super().update_label_info(_name(label_id, "label"), _name(label_tag, "tag"), info)

    def get_label_by_image_id(self, image_id: str, tag: str) -> str:
        return super().get_label_by_image_id(_name(image_id, "image"), _name(tag, "tag"))
