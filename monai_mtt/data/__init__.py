"""Data sources for MT-TransUNet: readers for ISIC 2017, PH2 and classification-only ISIC images,
the embedded ISIC-2017 sample (the default data), a synthetic ISIC-layout data set for tests, stratified folds,
one :func:`load_datalist` entry point and a
validation pass that reports every problem at once.

Datalist item convention: ``{"image": abs path, "label": mask path (absent if classification-only),
"class": 0 nevus | 1 melanoma | 2 seborrheic keratosis (absent if unknown), "id": str}``; a datalist
maps split names (``"train"``, ``"val"``, ``"test"``, ``"unlabeled"``) to lists of items.
"""

from monai_mtt.data.datalist import (
    SPLIT_ALIASES,
    evaluation_items,
    load_datalist,
    read_datalist_json,
    split_validation,
    training_datalists,
)
from monai_mtt.data.embedded import ISIC2017_SAMPLE_ADDITIONAL, isic2017_sample_root
from monai_mtt.data.folder import read_image_folder
from monai_mtt.data.folds import assign_folds, fold_datalists, fold_split
from monai_mtt.data.isic2017 import ISIC2017_SPLITS, find_isic2017_root, read_isic2017, read_part3_csv
from monai_mtt.data.isic_additional import ARCHIVE_DIAGNOSES, read_archive_metadata_csv, read_isic_additional
from monai_mtt.data.ph2 import PH2_LABEL_FILES, find_ph2_root, ph2_two_class, read_ph2, read_ph2_labels
from monai_mtt.data.sampling import class_balanced_sampler, class_balanced_weights
from monai_mtt.data.synthetic import SYNTHETIC_MANIFEST, make_synthetic_isic, synthetic_lesion
from monai_mtt.data.validation import (
    IMAGE_EXTENSIONS,
    DataProblem,
    DataValidationError,
    check_image,
    check_mask,
    is_image_file,
    oriented_size,
    raise_for_problems,
    validate_items,
)

__all__ = [
    "ARCHIVE_DIAGNOSES",
    "IMAGE_EXTENSIONS",
    "ISIC2017_SAMPLE_ADDITIONAL",
    "ISIC2017_SPLITS",
    "PH2_LABEL_FILES",
    "SPLIT_ALIASES",
    "SYNTHETIC_MANIFEST",
    "DataProblem",
    "DataValidationError",
    "assign_folds",
    "class_balanced_sampler",
    "class_balanced_weights",
    "check_image",
    "check_mask",
    "find_isic2017_root",
    "find_ph2_root",
    "fold_split",
    "fold_datalists",
    "is_image_file",
    "isic2017_sample_root",
    "load_datalist",
    "make_synthetic_isic",
    "oriented_size",
    "ph2_two_class",
    "read_archive_metadata_csv",
    "read_datalist_json",
    "read_isic2017",
    "read_isic_additional",
    "read_ph2",
    "read_ph2_labels",
    "read_part3_csv",
    "split_validation",
    "training_datalists",
    "evaluation_items",
    "read_image_folder",
    "raise_for_problems",
    "synthetic_lesion",
    "validate_items",
]
