"""MONAI Label app serving the MT-TransUNet bundle (2D RGB dermoscopy).

Start it with the label environment (see docs/monailabel.md)::

    monailabel start_server --app <path of this folder> --studies <image folder> --conf bundle <bundle dir>

``main.py`` holds the app; :mod:`.infer_task` and :mod:`.train_task` the tasks. Importing this
package does not import MONAI Label (the core environment does not have it).
"""

import os

APP_DIR = os.path.dirname(os.path.abspath(__file__))

__all__ = ["APP_DIR"]
