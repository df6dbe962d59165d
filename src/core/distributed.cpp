#include <adx/core/distributed.hpp>
#include <adx/core/runtime.hpp>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <mutex>

namespace adx {
namespace {

std::optional<std::string> environment(const char* adx_name, const char* torchrun_name) {
  if (const char* v = std::getenv(adx_name); v && *v) return std::string(v);
  if (torchrun_name)
    if (const char* v = std::getenv(torchrun_name); v && *v) return std::string(v);
  return std::nullopt;
}

int64_t parse_integer(const std::string& name, const std::string& text, int64_t low, int64_t high) {
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ADX_CHECK_AS(OptionError, used == text.size() && used > 0 && value >= low && value <= high,
               "environment variable {} must be an integer in [{}, {}], got '{}'", name, low, high, text);
  return value;
}

void check_distributed_options(const DistributedOptions& o) {
  ADX_CHECK_AS(OptionError, o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size,
               "distributed rank must lie in [0, world size {}), got rank {}", o.world_size, o.rank);
  ADX_CHECK_AS(OptionError, o.master_port >= 1 && o.master_port <= 65535, "master port must lie in [1, 65535], got {}",
               o.master_port);
  ADX_CHECK_AS(OptionError, !o.master_addr.empty(), "master address must not be empty");
  ADX_CHECK_AS(OptionError, o.timeout_seconds > 0, "distributed timeout must be > 0 seconds, got {}", o.timeout_seconds);
}

std::chrono::milliseconds timeout_of(const DistributedOptions& o) {
  return std::chrono::milliseconds(static_cast<int64_t>(o.timeout_seconds * 1000.0));
}

bool is_loopback(const std::string& address) {
  return address == "localhost" || address.rfind("127.", 0) == 0 || address == "::1";
}

std::mutex group_mutex;
std::shared_ptr<ProcessGroup> current_group;

}  // namespace

std::optional<DistributedOptions> distributed_options_from_environment() {
  const auto world = environment("ADX_WORLD_SIZE", "WORLD_SIZE");
  if (!world) return std::nullopt;
  DistributedOptions o;
  o.world_size = parse_integer("ADX_WORLD_SIZE (or WORLD_SIZE)", *world, 1, 1 << 20);
  const auto rank = environment("ADX_RANK", "RANK");
  ADX_CHECK_AS(OptionError, rank || o.world_size == 1,
               "a world size of {} is set but no rank: set ADX_RANK (or RANK) on every process", o.world_size);
  if (rank) o.rank = parse_integer("ADX_RANK (or RANK)", *rank, 0, o.world_size - 1);
  if (const auto addr = environment("ADX_MASTER_ADDR", "MASTER_ADDR")) o.master_addr = *addr;
  if (const auto port = environment("ADX_MASTER_PORT", "MASTER_PORT"))
    o.master_port = parse_integer("ADX_MASTER_PORT (or MASTER_PORT)", *port, 1, 65535);
  if (const auto timeout = environment("ADX_DIST_TIMEOUT", nullptr)) {
    char* end = nullptr;
    o.timeout_seconds = std::strtod(timeout->c_str(), &end);
    ADX_CHECK_AS(OptionError, end && *end == '\0' && o.timeout_seconds > 0,
                 "environment variable ADX_DIST_TIMEOUT must be seconds > 0, got '{}'", *timeout);
  }
  return o;
}

struct ProcessGroup::State {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

// Runs one collective, waits for it within the timeout, and turns c10d's and Gloo's failures into
// DistributedErrors that say which collective and which rank.
struct ProcessGroupAccess {
  template <class Start>
  static void run(ProcessGroup& g, const char* what, Start&& start) {
    const auto begin = std::chrono::steady_clock::now();
    try {
      auto work = start(*g.state_->group);
      work->wait(timeout_of(g.options_));
    } catch (const std::exception& e) {
      throw DistributedError(fmt::format(
          "rank {} of {}: {} failed (another rank died, left or took longer than the {} s timeout): {}",
          g.options_.rank, g.options_.world_size, what, g.options_.timeout_seconds, describe_exception(e)));
    }
    g.communication_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  }
  // In place, through a host copy when the tensor is not a contiguous CPU tensor.
  static void all_reduce(ProcessGroup& g, at::Tensor& tensor, c10d::ReduceOp::RedOpType op, const char* what);
  // Every rank's rows, concatenated in rank order, on `root` (on every rank when root < 0).
  static at::Tensor gather(ProcessGroup& g, const at::Tensor& tensor, int64_t root);
};

ProcessGroup::ProcessGroup(const DistributedOptions& options) : state_(std::make_unique<State>()), options_(options) {
  check_distributed_options(options_);
  const auto timeout = timeout_of(options_);
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(options_.master_port);
  store_options.isServer = options_.rank == 0;
  store_options.numWorkers = static_cast<size_t>(options_.world_size);
  store_options.waitWorkers = true;
  store_options.timeout = timeout;
  const auto where = fmt::format("{}:{}", options_.master_addr, options_.master_port);
  try {
    state_->store = c10::make_intrusive<c10d::TCPStore>(options_.master_addr, store_options);
  } catch (const std::exception& e) {
    const auto message = describe_exception(e);
    if (options_.rank == 0 && message.find("in use") != std::string::npos)
      throw DistributedError(fmt::format("rank 0 cannot host the rendezvous at {}: the port is already in use "
                                         "(another run, or a stale one); choose another ADX_MASTER_PORT",
                                         where));
    throw DistributedError(fmt::format(
        "rank {} of {}: the rendezvous at {} failed within the {} s timeout (every rank must start, with the "
        "same ADX_WORLD_SIZE, ADX_MASTER_ADDR and ADX_MASTER_PORT): {}",
        options_.rank, options_.world_size, where, options_.timeout_seconds, message));
  }
  try {
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface)
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
    else if (is_loopback(options_.master_addr))
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    gloo_options->threads = 2;
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("adx", state_->store);
    state_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, static_cast<int>(options_.rank),
                                                                 static_cast<int>(options_.world_size), gloo_options);
  } catch (const std::exception& e) {
    throw DistributedError(fmt::format("rank {} of {}: connecting the Gloo process group through {} failed: {}",
                                       options_.rank, options_.world_size, where, describe_exception(e)));
  }
}

ProcessGroup::~ProcessGroup() = default;

namespace {
// Gloo reduces host tensors; CUDA tensors pass through a contiguous host copy.
torch::Tensor host_copy(const torch::Tensor& t) { return t.device().is_cpu() && t.is_contiguous() ? t : t.cpu().contiguous(); }
void copy_back(at::Tensor& target, const torch::Tensor& host) {
  if (!host.is_same(target)) target.copy_(host);
}
}  // namespace

void ProcessGroupAccess::all_reduce(ProcessGroup& g, at::Tensor& tensor, c10d::ReduceOp::RedOpType op,
                                    const char* what) {
  std::vector<torch::Tensor> tensors{host_copy(tensor)};
  run(g, what, [&](c10d::ProcessGroupGloo& group) {
    c10d::AllreduceOptions o;
    o.reduceOp = op;
    return group.allreduce(tensors, o);
  });
  copy_back(tensor, tensors[0]);
}

void ProcessGroup::all_reduce_sum(at::Tensor& tensor) {
  ProcessGroupAccess::all_reduce(*this, tensor, c10d::ReduceOp::SUM, "all-reduce (sum)");
}

void ProcessGroup::all_reduce_max(at::Tensor& tensor) {
  ProcessGroupAccess::all_reduce(*this, tensor, c10d::ReduceOp::MAX, "all-reduce (max)");
}

void ProcessGroup::broadcast(at::Tensor& tensor, int64_t root) {
  ADX_CHECK_AS(OptionError, root >= 0 && root < options_.world_size, "broadcast root {} is not a rank of {}", root,
               options_.world_size);
  std::vector<torch::Tensor> tensors{host_copy(tensor)};
  ProcessGroupAccess::run(*this, "broadcast", [&](c10d::ProcessGroupGloo& g) {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    return g.broadcast(tensors, o);
  });
  copy_back(tensor, tensors[0]);
}

void ProcessGroup::all_reduce_min(at::Tensor& tensor) {
  ProcessGroupAccess::all_reduce(*this, tensor, c10d::ReduceOp::MIN, "all-reduce (min)");
}

// Gloo gathers equal sizes: every rank's rows are padded to the largest count, and the padding is cut off
// after. `root` < 0 gathers to every rank.
at::Tensor ProcessGroupAccess::gather(ProcessGroup& g, const at::Tensor& tensor, int64_t root) {
  const auto& options = g.options_;
  ADX_CHECK_AS(ShapeError, tensor.dim() >= 1, "gathering needs a tensor with a first dimension, got a scalar");
  ADX_CHECK_AS(OptionError, root < options.world_size, "gather root {} is not a rank of {}", root,
               options.world_size);
  auto sizes = torch::full({options.world_size}, 0, torch::kLong);
  sizes[options.rank] = tensor.size(0);
  g.all_reduce_sum(sizes);
  const int64_t largest = sizes.max().item<int64_t>();
  const bool receives = root < 0 || root == options.rank;
  if (largest == 0) return receives ? tensor.clone() : tensor.slice(0, 0, 0).clone();  // nothing anywhere
  auto padded_shape = tensor.sizes().vec();
  padded_shape[0] = largest;
  auto input = torch::zeros(padded_shape, tensor.options().device(torch::kCPU));
  input.slice(0, 0, tensor.size(0)).copy_(tensor);
  std::vector<std::vector<torch::Tensor>> outputs(1);
  if (receives)
    for (int64_t r = 0; r < options.world_size; ++r) outputs[0].push_back(torch::empty_like(input));
  std::vector<torch::Tensor> inputs{input};
  if (root < 0) {
    run(g, "all-gather", [&](c10d::ProcessGroupGloo& group) { return group.allgather(outputs, inputs); });
  } else {
    if (!receives) outputs.clear();
    run(g, "gather", [&](c10d::ProcessGroupGloo& group) {
      c10d::GatherOptions o;
      o.rootRank = root;
      return group.gather(outputs, inputs, o);
    });
  }
  if (!receives) return tensor.slice(0, 0, 0).clone();
  std::vector<torch::Tensor> parts;
  for (int64_t r = 0; r < options.world_size; ++r) parts.push_back(outputs[0][r].slice(0, 0, sizes[r].item<int64_t>()));
  return torch::cat(parts).to(tensor.device());
}

at::Tensor ProcessGroup::all_gather(const at::Tensor& tensor) { return ProcessGroupAccess::gather(*this, tensor, -1); }

at::Tensor ProcessGroup::gather(const at::Tensor& tensor, int64_t root) {
  ADX_CHECK_AS(OptionError, root >= 0, "gather root must be a rank, got {}", root);
  return ProcessGroupAccess::gather(*this, tensor, root);
}

void ProcessGroup::barrier() {
  ProcessGroupAccess::run(*this, "barrier", [&](c10d::ProcessGroupGloo& g) { return g.barrier(); });
}

std::shared_ptr<ProcessGroup> init_distributed(const DistributedOptions& options) {
  auto group = std::make_shared<ProcessGroup>(options);
  std::lock_guard<std::mutex> lock(group_mutex);
  current_group = group;
  return group;
}

std::shared_ptr<ProcessGroup> init_distributed_from_environment() {
  const auto options = distributed_options_from_environment();
  if (!options) return nullptr;
  return init_distributed(*options);
}

void shutdown_distributed() {
  std::lock_guard<std::mutex> lock(group_mutex);
  current_group.reset();
}

ProcessGroup* current_process_group() {
  std::lock_guard<std::mutex> lock(group_mutex);
  return current_group && current_group->world_size() > 1 ? current_group.get() : nullptr;
}

std::pair<int64_t, int64_t> share_of(ProcessGroup* group, int64_t count) {
  if (group == nullptr) return {0, count};
  const int64_t ranks = group->world_size(), rank = group->rank();
  return {count * rank / ranks, count * (rank + 1) / ranks};
}

at::Tensor gather_parts(ProcessGroup* group, const at::Tensor& part) {
  return group == nullptr ? part : group->all_gather(part);
}

void max_over_ranks(ProcessGroup* group, at::Tensor& tensor) {
  if (group != nullptr) group->all_reduce_max(tensor);
}

std::pair<int64_t, int64_t> range_over_ranks(ProcessGroup* group, int64_t value) {
  if (group == nullptr) return {value, value};
  auto extremes = torch::tensor({-value, value}, torch::kLong);
  group->all_reduce_max(extremes);
  return {-extremes[0].item<int64_t>(), extremes[1].item<int64_t>()};
}

int64_t distributed_rank() {
  std::lock_guard<std::mutex> lock(group_mutex);
  return current_group ? current_group->rank() : 0;
}

}  // namespace adx
