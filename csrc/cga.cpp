// Operator schemas of the `cga` library. Implementations: csrc/cpu/*.cpp (CPU, C++) and
// cga_kernels/triton/ (CUDA, Triton); autograd and fake kernels are registered from Python.
#include <torch/library.h>

TORCH_LIBRARY(cga, m) {
  m.def("pool_hard(Tensor x, Tensor labels, int num_classes) -> (Tensor proto, Tensor counts)");
  m.def("pool_soft(Tensor x, Tensor weights) -> (Tensor proto, Tensor counts)");
  m.def("scatter_hard(Tensor proto, Tensor labels) -> Tensor");
  m.def("scatter_soft(Tensor proto, Tensor weights) -> Tensor");
  m.def("intra_update_hard(Tensor x, Tensor labels, Tensor active, bool residual) -> (Tensor y, Tensor proto, Tensor counts)");
  m.def("intra_update_hard_backward(Tensor grad_y, Tensor grad_proto, Tensor labels, Tensor active, Tensor counts, bool residual) -> Tensor");
  m.def("intra_update_soft(Tensor x, Tensor weights, Tensor active, bool residual) -> (Tensor y, Tensor proto, Tensor counts)");
  m.def("intra_update_soft_backward(Tensor grad_y, Tensor grad_proto, Tensor grad_counts, Tensor x, Tensor weights, Tensor active, Tensor proto, Tensor counts, bool residual) -> (Tensor grad_x, Tensor grad_weights)");
  m.def("pair_distances(Tensor proto, Tensor present) -> Tensor");
  m.def("pair_distances_backward(Tensor grad, Tensor proto, Tensor dist) -> Tensor");
}
