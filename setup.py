"""Builds ``cga_kernels._C`` (the C++ CPU kernels of the ``cga::`` ops) with cpp_extension + ninja.

No CUDA is needed or used: GPU kernels are Triton (``cga_kernels/triton``). The library is a
plain shared object (``ATen`` + ``torch/library.h``, no pybind11), loaded with
``torch.ops.load_library``, which keeps the build short.
"""

import glob
import os
import shutil

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

sources = sorted(glob.glob("csrc/cpu/*.cpp"))  # one file per op; the schemas are defined in Python


class BuildExtensionReplacing(BuildExtension.with_options(use_ninja=True)):
    """Puts a built library in place by writing a new file and renaming it over the old one (``pip install -e .``
    otherwise rewrites ``cga_kernels/_C*.so`` in place, and processes that have it loaded crash)."""

    def copy_file(self, infile, outfile, *args, **kwargs):
        if not str(outfile).endswith(".so"):
            return super().copy_file(infile, outfile, *args, **kwargs)
        partial = f"{outfile}.partial-{os.getpid()}"
        shutil.copy2(infile, partial)
        os.replace(partial, outfile)
        return outfile, True


setup(
    packages=find_packages(include=["cga_kernels", "cga_kernels.*", "cga_model", "cga_model.*"]),
    ext_modules=[
        CppExtension(
            name="cga_kernels._C",
            sources=sources,
            include_dirs=["csrc"],
            extra_compile_args=["-O3", "-std=c++17", "-fopenmp", "-g0"],
            extra_link_args=["-fopenmp"],
        )
    ],
    cmdclass={"build_ext": BuildExtensionReplacing},
)
