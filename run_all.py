"""Blur a folder of images with every approach, time them, check they agree with a, and chart it.

    python run_all.py --help
"""

import sys

from approaches.runner import main

if __name__ == "__main__":
    sys.exit(main())
