"""The ISIC-2017 sample shipped inside the package: the bundle's default data.

A stratified subset of the official ISIC 2017 *training* set (CC-0; Codella et al. 2017,
arXiv:1710.05006), reduced to 128x128 and laid out as the readers expect (built by
``scripts/build_isic_sample.py``; counts and licence in its ``LICENSE.txt``)::

    ISIC-2017_Training_{Data,Part1_GroundTruth,Part3_GroundTruth.csv}    290 labeled images
    ISIC-Additional/ (images + Part 3 CSV, masks withheld)               145 classification-only images
    ISIC-2017_Validation_{...}                                           40 images, model selection
    ISIC-2017_Test_v2_{...}                                              80 held-out images, evaluation

Each part keeps the source's class proportions (about 69 % nevus, 19 % melanoma, 13 % keratosis).
The folder names give the parts the official layout; they are not the official validation or
test sets.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ISIC2017_SAMPLE_ADDITIONAL", "isic2017_sample_root"]

ISIC2017_SAMPLE_ADDITIONAL = "ISIC-Additional"
"""Folder of the classification-only part, inside :func:`isic2017_sample_root`."""

_SAMPLE = Path(__file__).resolve().parent / "sample" / "isic2017_sample"


def isic2017_sample_root() -> Path:
    """Path of the embedded ISIC-2017 sample (read it with :func:`~monai_mtt.data.load_datalist`).

    Raises:
        FileNotFoundError: the package was installed without its data files.
    """
    if not (_SAMPLE / "ISIC-2017_Training_Part3_GroundTruth.csv").is_file():
        raise FileNotFoundError(
            f"the embedded ISIC-2017 sample is missing at {_SAMPLE}; reinstall monai_mtt with its package "
            "data (pip install monai-mtt, or pip install -e . from the repository), or pass dataset_dir"
        )
    return _SAMPLE
