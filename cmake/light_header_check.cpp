// Compiled without the precompiled header: adx/base.hpp must stand alone and stay light. It may use
// LibTorch's tensor and device types, not its nn, optim or autograd front end, which is what makes a
// translation unit slow to compile (a detector header brings that in itself).
#include <adx/base.hpp>

#ifdef TORCH_MODULE
#error "adx/base.hpp includes LibTorch's nn front end (torch/torch.h); keep it to ATen/core/Tensor.h"
#endif
