"""What a setting may be: kernel sizes and methods, PNG encoders, image sizes.  Plain values, no numpy or numba.

kernel.py and png.py hold what these names mean; the names and bounds live here so that a command line can
list them in its --help, and a configuration check them, without loading the kernel's compiler.
"""

from numbers import Integral

MAX_KERNEL_SIZE = 255
KERNELS = ("separable", "direct")  # how kernel.blur_tile computes the Gaussian: see kernel.py's docstring
PNG_ENCODERS = ("pillow", "fpng")
DEFAULT_ENCODER = "fpng"  # much faster than Pillow, files a little larger: docs/performance.md measures both
DEFAULT_MAX_PIXELS = 89_478_485  # per image: Pillow's own limit (Image.MAX_IMAGE_PIXELS), its guard against bombs
MAX_PIXELS = 1 << 28  # the most --max-pixels allows: 268 MP, 805 MB of RGB, blurred in ~2.4 GB (docs/performance.md)


def validate_kernel_size(kernel_size: int) -> int:
    """Return the kernel size if it is odd and in 1..MAX_KERNEL_SIZE, else raise ValueError.

    >>> validate_kernel_size(21)
    21
    >>> validate_kernel_size(4)
    Traceback (most recent call last):
    ...
    ValueError: kernel size must be odd and between 1 and 255, got 4
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, Integral):  # numpy's integers are Integral
        raise ValueError(f"kernel size must be an integer, got {kernel_size!r}")
    if not 1 <= kernel_size <= MAX_KERNEL_SIZE or kernel_size % 2 == 0:
        raise ValueError(f"kernel size must be odd and between 1 and {MAX_KERNEL_SIZE}, got {kernel_size}")
    return int(kernel_size)
