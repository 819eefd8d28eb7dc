"""The shared small helpers of ``monai_mtt.utils``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from monai_mtt.utils import nan_to_none, parse_list, to_numpy


@pytest.mark.parametrize(
    "value, cast, expected",
    [
        (None, str, []),
        ("", str, []),
        ("identity,hflip", str, ["identity", "hflip"]),  # the apps' comma form
        (" identity hflip ", str, ["identity", "hflip"]),  # the deploy app's space form
        ("224;256, 288", int, [224, 256, 288]),  # the Label request's semicolons
        (224, int, [224]),
        ([224, "256", ("288",)], int, [224, 256, 288]),
    ],
)
def test_parse_list(value, cast, expected):
    assert parse_list(value, cast) == expected


def test_parse_list_bad_element_names_itself():
    with pytest.raises(ValueError, match="'abc'"):
        parse_list("224,abc", int)


def test_nan_to_none_makes_strict_json():
    obj = {"a": math.nan, 1: [1.5, math.inf, (-math.inf, "x")], "n": np.float64("nan"), "ok": np.float64(0.25)}
    out = nan_to_none(obj)
    assert out == {"a": None, "1": [1.5, None, [None, "x"]], "n": None, "ok": 0.25}
    json.dumps(out, allow_nan=False)  # would raise on any NaN / inf left


def test_to_numpy():
    t = torch.tensor([[1.5, 2.0]], requires_grad=True)
    a = to_numpy(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.tolist() == [[1.5, 2.0]]
    assert to_numpy(torch.tensor([0.5], dtype=torch.bfloat16)).dtype == np.float32
    assert to_numpy(torch.tensor([1, 0], dtype=torch.uint8)).dtype == np.uint8  # integer tensors stay integer
    assert to_numpy([1, 2], np.float64).dtype == np.float64
    assert to_numpy(torch.tensor([True, False]), bool).tolist() == [True, False]
