"""MT-TransUNet for MONAI: joint skin-lesion segmentation and classification with multi-task tokens.

Sub-packages follow MONAI's concepts: :mod:`monai_mtt.networks`, :mod:`monai_mtt.losses`,
:mod:`monai_mtt.transforms`, :mod:`monai_mtt.engines`, :mod:`monai_mtt.handlers`,
:mod:`monai_mtt.inferers`, :mod:`monai_mtt.metrics`, :mod:`monai_mtt.data` and :mod:`monai_mtt.apps`.

Class order everywhere: 0 nevus, 1 melanoma, 2 seborrheic keratosis.
"""

# The one source of the version: pyproject.toml reads it (setuptools dynamic version) and the code imports it;
# the data files that must carry a literal (bundle/configs/metadata.json, monai_mtt/apps/deploy/app.yaml)
# are checked against it by tests/test_version.py.
__version__ = "0.1.0"

CLASS_NAMES = ("nevus", "melanoma", "seborrheic_keratosis")

from monai_mtt.errors import install_bundle_excepthook as _install_bundle_excepthook  # noqa: E402

_install_bundle_excepthook()  # only under `python -m monai.bundle`: messages, not tracebacks, for data errors
