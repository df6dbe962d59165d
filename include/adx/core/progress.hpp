#pragma once
// Progress reporting for training: a callback that receives one report per
// epoch, and a terminal progress bar for programs.
#include <cstdint>
#include <functional>
#include <string>

namespace adx {

/// What a training loop tells its observer after every epoch.
struct EpochReport {
  int64_t epoch = 0;          ///< 1-based epoch just finished
  int64_t epochs = 0;         ///< planned number of epochs
  double train_loss = 0.0;    ///< mean training loss of the epoch
  double val_loss = -1.0;     ///< mean validation loss, or -1 without validation data
  double learning_rate = 0.0; ///< learning rate used in the epoch
  double seconds = 0.0;       ///< wall time of the epoch
  bool improved = false;      ///< validation loss reached a new best
  bool last = false;          ///< no further epoch follows (end or early stop)
  std::string stage;          ///< which model or phase is training
};

using ProgressCallback = std::function<void(const EpochReport&)>;

/// A callback that draws a one-line progress bar on stderr.
ProgressCallback terminal_progress_bar();

}  // namespace adx
