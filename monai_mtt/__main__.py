import sys

from monai_mtt.cli import main

sys.exit(main())
