"""The one compiled part: the capture's fused reductions (nnviz_report/stats/_fused.c), plain C
loaded with ctypes. Optional: where no C compiler is found or the build fails, pip still installs
the package and the capture takes its torch path (same numbers to float rounding, slower).
Everything else about the package is in pyproject.toml."""

import sys

from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-adds, so the AVX2 and the baseline copies of the kernel
# (and machines with and without FMA) round every sum the same way.
FLAGS = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=off"]

setup(
    ext_modules=[
        Extension("nnviz_report.stats._fused", sources=["nnviz_report/stats/_fused.c"], extra_compile_args=FLAGS,
                  optional=True),
    ],
)
