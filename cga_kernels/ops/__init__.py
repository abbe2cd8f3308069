"""One module per op: ``pool``, ``scatter``, ``intra_update``, ``distances`` (the names of
csrc/cpu/<op>.cpp and cga_kernels/triton/<op>.py). Each holds its low-level ops' declarations
(``LOW_LEVEL``: schema, fake kernel, autograd formula, ONNX translation, FLOP count, AOT
example), the FLOP formulas and the public functions, written against
``cga_kernels._binding.Kernels`` (their first argument). ``cga_kernels.registry`` holds one
row per module.
"""
