"""Builds ``cga_kernels._C`` (the C++ CPU kernels of the ``cga::`` ops) with cpp_extension + ninja.

No CUDA is needed or used: GPU kernels are Triton (``cga_kernels/triton``). The library is a
plain shared object (``ATen`` + ``torch/library.h``, no pybind11), loaded with
``torch.ops.load_library``, which keeps the build short.
"""

import glob

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

sources = sorted(glob.glob("csrc/cpu/*.cpp"))  # one file per op; the schemas are defined in Python

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
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
