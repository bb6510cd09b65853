"""Publish an exported checkpoint folder to the Hugging Face Hub: a thin script over the library.

    python hub/publish.py EXPORT_DIR --repo org/name [--private] [--dry-run] [--verify-data ROOT] [--tag v1]

The validation and the upload live in ``stc_zoo.hub.publish`` (see its docstring and hub/README.md).
"""

import sys

from stc_zoo.hub.publish import main

if __name__ == "__main__":
    sys.exit(main())
