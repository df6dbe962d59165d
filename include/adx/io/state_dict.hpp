#pragma once
// Weights written by PyTorch: a state dict saved with torch.save (plain dict
// or the OrderedDict that model.state_dict() returns and torchvision's
// downloadable files contain) or a TorchScript module, read without Python.
#include <adx/io/model_file.hpp>

#include <string>
#include <vector>

namespace torch::nn {
class Module;
}

namespace adx {

/// Reads every tensor of `path`, by its state-dict name ("layer1.0.conv1.weight").
/// Accepts torch.save's zip format (dict or OrderedDict, parameters or plain
/// tensors) and TorchScript archives (parameters and buffers of the module tree).
/// Anything else is an IoError that says what the file is and how to export it.
TensorMap load_state_dict(const std::string& path);

/// How load_into matches a state dict to a module.
struct LoadStateOptions {
  /// Prefixes of module entries that may be absent from the file (e.g. a head the user replaced).
  std::vector<std::string> optional_prefixes;
  /// Entries of the file that no module entry uses are an error unless they start with one of these.
  std::vector<std::string> ignored_prefixes;
};

/// Copies `state` into `module`'s parameters and buffers. Every name must exist
/// with the same shape; the first missing, unexpected or misshapen entry is an
/// IoError naming it and both shapes. `what` names the module in messages.
void load_into(torch::nn::Module& module, const TensorMap& state, const std::string& what,
               const LoadStateOptions& options = {});

}  // namespace adx
