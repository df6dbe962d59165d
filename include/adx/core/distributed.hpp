#pragma once
// Data-parallel runs over PyTorch's c10d: a Gloo process group that meets at a
// TCPStore on the master address, configured like torchrun. Light header: no
// LibTorch include.
//
// Every rank holds the whole data set and the same options. Training splits each
// global batch among the ranks, all-reduces the gradients (weighted by each
// rank's share of the batch, so the step equals one process's on the global
// batch), agrees on the shuffle order, the starting weights, the validation loss
// and so on early stopping. BatchNorm statistics are local: each rank normalises
// over its own part of the batch, as PyTorch's DistributedDataParallel does
// without SyncBatchNorm; one process with train.micro_batches = world size
// computes the very same steps.
#include <adx/core/error.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace at {
class Tensor;
}

namespace adx {

/// A distributed run failed: a rank never joined or died, the rendezvous port was taken, a collective
/// timed out.
class DistributedError : public Error {
 public:
  using Error::Error;
};

struct DistributedOptions {
  int64_t rank = 0;
  int64_t world_size = 1;
  /// Where rank 0 listens for the rendezvous (TCPStore).
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  /// How long a rank waits for the others, at the rendezvous and in every collective, before a
  /// DistributedError.
  double timeout_seconds = 300;
};

/// The run's settings from the environment: ADX_RANK, ADX_WORLD_SIZE, ADX_MASTER_ADDR, ADX_MASTER_PORT,
/// ADX_DIST_TIMEOUT (seconds), each falling back to torchrun's RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
/// Empty when no world size is set; malformed or inconsistent values are OptionErrors.
std::optional<DistributedOptions> distributed_options_from_environment();

/// A c10d Gloo process group. Collectives work on tensors of any device (CUDA tensors pass through the
/// host, as Gloo needs) and throw DistributedError when a peer is gone or the timeout passes.
class ProcessGroup {
 public:
  /// Meets the other ranks (rank 0 hosts the store). A rank that does not arrive within the timeout, or
  /// a master port already in use, is a DistributedError.
  explicit ProcessGroup(const DistributedOptions& options);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int64_t rank() const { return options_.rank; }
  int64_t world_size() const { return options_.world_size; }
  const DistributedOptions& options() const { return options_; }

  /// In place: the element-wise sum over ranks.
  void all_reduce_sum(at::Tensor& tensor);
  /// In place: the element-wise maximum over ranks.
  void all_reduce_max(at::Tensor& tensor);
  /// In place: the element-wise minimum over ranks.
  void all_reduce_min(at::Tensor& tensor);
  /// In place: every rank gets `root`'s values.
  void broadcast(at::Tensor& tensor, int64_t root = 0);
  /// Every rank's tensor, concatenated in rank order along the first dimension (sizes may differ).
  at::Tensor all_gather(const at::Tensor& tensor);
  /// all_gather's result on `root` only (an empty tensor elsewhere): what is gathered is held once.
  at::Tensor gather(const at::Tensor& tensor, int64_t root = 0);
  void barrier();
  /// Seconds spent inside collectives since construction (for scaling estimates).
  double communication_seconds() const { return communication_seconds_; }

 private:
  struct State;
  std::unique_ptr<State> state_;
  DistributedOptions options_;
  double communication_seconds_ = 0;
  friend struct ProcessGroupAccess;
};

/// Starts the process group that training and fitting use from now on in this process.
std::shared_ptr<ProcessGroup> init_distributed(const DistributedOptions& options);
/// init_distributed with distributed_options_from_environment(); nothing (and nullptr) when the
/// environment sets no world size.
std::shared_ptr<ProcessGroup> init_distributed_from_environment();
/// Leaves the process group (training is single-process again).
void shutdown_distributed();
/// The current process group; nullptr in a single-process run.
ProcessGroup* current_process_group();
/// Work shared over the ranks of `group`, written once for both cases: without a group (nullptr) each
/// helper does what one process alone needs.
/// The items [first, second) of `count` this rank works on: a contiguous share (all of them alone).
std::pair<int64_t, int64_t> share_of(ProcessGroup* group, int64_t count);
/// Every rank's `part`, concatenated in rank order (all_gather); `part` itself alone.
at::Tensor gather_parts(ProcessGroup* group, const at::Tensor& part);
/// In place: the element-wise maximum over the ranks; nothing alone.
void max_over_ranks(ProcessGroup* group, at::Tensor& tensor);
/// The least and the largest of `value` over the ranks, in one all-reduce (a collective step checks with it
/// that every rank brought the same size); {value, value} alone.
std::pair<int64_t, int64_t> range_over_ranks(ProcessGroup* group, int64_t value);

/// This process's rank (0 without a group) and whether it is rank 0.
int64_t distributed_rank();
inline bool is_main_rank() { return distributed_rank() == 0; }

}  // namespace adx
