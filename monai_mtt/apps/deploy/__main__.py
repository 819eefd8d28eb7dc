"""``python -m monai_mtt.apps.deploy -i IN -o OUT [-m MODEL]``; also the MAP entry point (``python app_dir``)."""

import sys

from monai_mtt.apps.deploy.app import main

if __name__ == "__main__":
    sys.exit(main())
