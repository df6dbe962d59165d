#pragma once
// Input kinds: one small description per kind of data (tabular, image,
// series, graph, video), each in its own source file. A kind owns what
// differs between them: validation, the shape of one item, how items are
// sliced, selected and stacked into batches, the hold-out split, the default
// preprocessing, how item scores become per-step scores, and the stable name
// written into model files, what its data look like (traits), and how its data
// are rebuilt from rows or steps and read from files. The detector base, the
// trainer, the model file, the server, the ensemble, streams and the `adx`
// command work only through this interface, so a new kind is one new file
// (plus one line in the kind table, or register_input_kind for a user's own).
#include <adx/data/data.hpp>
#include <adx/data/transforms.hpp>

#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace adx {

/// How a kind with steps (series, video) turns the scores of the items covering a step into the
/// step's score.
enum class StepAssembly {
  Mean,  ///< the mean over the windows / clips covering the step (of their step maps, if given)
  Max,   ///< the largest of them (discord style: a step is as anomalous as the worst window through it)
};
ADX_ENUM_NAMES(StepAssembly, {StepAssembly::Mean, "mean"}, {StepAssembly::Max, "max"});

/// What a kind's data look like, for code that must treat kinds differently (drift features, the
/// server, the ensemble, streams, the networks of detectors that take several kinds) without naming them.
struct InputKindTraits {
  bool rows_are_items = false;  ///< each row of x is one item (tabular, image): items_from rebuilds data from rows
  bool image_rows = false;      ///< each row of x, item or step, is a C x H x W image (image, video)
  bool steps = false;           ///< items cover steps of sequences and scores come back per step (series, video)
  bool graph = false;           ///< items are nodes of a graph with an edge list (graph)
};

/// How to read a kind's data from a file or folder (read_input, the `adx` command).
struct ReadOptions {
  std::string edges;       ///< graph: the edge list (src,dst[,weight] CSV or NPY); the file holds node features
  Windows windows{0, 1};   ///< series / video: steps per window (0 = not given) and the stride
  int64_t image_size = 0;  ///< image and frame folders: resize to S x S (0 = keep)
  int channels = 3;        ///< image and frame folders: 1 (grey) or 3 (RGB)
};

class InputKind {
 public:
  virtual ~InputKind() = default;

  /// Stable name, written into model files.
  virtual std::string name() const = 0;
  /// What its data look like.
  virtual InputKindTraits traits() const { return {}; }
  /// Data of this kind whose items are the rows of x (kinds with rows_are_items; for the server, the
  /// ensemble and the CLI); other kinds throw NotSupportedError.
  virtual Data items_from(at::Tensor x) const;
  /// One sequence of steps cut into windows (kinds with steps; for streams); others throw NotSupportedError.
  virtual Data from_steps(at::Tensor steps, Windows windows) const;
  /// Reads this kind's data from `path` (a file or folder); `columns` receives a CSV header's value
  /// columns where there is one. The default throws NotSupportedError.
  virtual Data read(const std::string& path, const ReadOptions& options, std::vector<std::string>* columns) const;
  /// Checks shapes, dtypes, index ranges and finiteness; throws ShapeError / ValueError naming `what`.
  virtual void validate(const Data& data, const char* what) const = 0;
  /// Number of items.
  virtual int64_t size(const Data& data) const = 0;
  /// Shape of one item as a network sees it.
  virtual std::vector<int64_t> item_shape(const Data& data) const = 0;
  /// The items at `indices` (int64, any order).
  virtual Data select(const Data& data, const at::Tensor& indices) const = 0;
  /// Items [begin, end); the default selects them, kinds override it to share storage or narrow x.
  virtual Data slice(const Data& data, int64_t begin, int64_t end) const;
  /// Stacks every item of `data` into one batch.
  virtual Batch collate(const Data& data) const = 0;
  /// Splits off about `fraction` of the items for validation: {train, validation}. The
  /// validation part has size() 0 when there is too little data to split. The default
  /// draws random items (LibTorch's generator, so fit's seed decides).
  virtual std::pair<Data, Data> holdout(const Data& data, double fraction) const;
  /// What preprocess = auto means for this kind.
  virtual Preprocess default_preprocess() const = 0;
  /// The raw values preprocessing is fitted on: only what the items of `data` cover.
  virtual at::Tensor fit_values(const Data& data) const { return data.x; }
  /// Whether items cover steps of a sequence and scores come back per step (series, video).
  bool has_steps() const { return traits().steps; }
  /// Running per-step sums while a long sequence is scored chunk by chunk, so that no
  /// window's step scores outlive its chunk.
  struct StepSums {
    at::Tensor sums, counts;
    at::Tensor maxima;  ///< with StepAssembly::Max
    StepAssembly assembly = StepAssembly::Mean;
  };
  /// Adds the scores `part` of items [first, first + part.per_item.size(0)) of `data`.
  virtual void accumulate_steps(const Data& /*data*/, int64_t /*first*/, const Scores& /*part*/,
                                StepSums& /*sums*/) const {}
  /// Sets scores.per_step from the sums.
  virtual void finish_steps(const StepSums& /*sums*/, Scores& /*scores*/) const {}
  /// Completes the scores of all items of `data` at once (series and video: per-step assembly).
  void assemble(const Data& data, Scores& scores, StepAssembly assembly = StepAssembly::Mean) const {
    if (!has_steps()) return;
    StepSums sums;
    sums.assembly = assembly;
    accumulate_steps(data, 0, scores, sums);
    finish_steps(sums, scores);
  }
  /// Items per scoring pass when `requested` are asked for.
  virtual int64_t score_chunk(const Data& /*data*/, int64_t requested) const { return requested; }
  /// Moves every tensor of `data` to `device`.
  virtual Data to_device(const Data& data, const c10::Device& device) const;
};

/// Kinds whose items are the rows of x (tabular, image).
class RowKind : public InputKind {
 public:
  InputKindTraits traits() const override { return {/*rows_are_items=*/true}; }
  Data items_from(at::Tensor x) const override;
  int64_t size(const Data& data) const override { return data.x.defined() ? data.x.size(0) : 0; }
  std::vector<int64_t> item_shape(const Data& data) const override;
  Data select(const Data& data, const at::Tensor& indices) const override;
  Data slice(const Data& data, int64_t begin, int64_t end) const override;
  Batch collate(const Data& data) const override;
};

/// The kind called `name`; an unknown name is OptionError listing the known ones.
const InputKind& input_kind(const std::string& name);
/// All kind names, sorted.
std::vector<std::string> input_kind_names();
/// Adds (or replaces) a kind, e.g. a user's own. Thread-safe.
void register_input_kind(std::shared_ptr<const InputKind> kind);

/// Reads data from `path` as the kind called `kind_name`, or with "auto": a graph when options.edges is
/// given, images from a folder or from a file of rank 3 or 4 (NPY, IDX), else a table (CSV, NPY). "-" is
/// standard input, read as CSV text.
Data read_input(const std::string& path, const std::string& kind_name, const ReadOptions& options = {},
                std::vector<std::string>* columns = nullptr);

/// Checks what every kind requires of x: defined, floating point, `rank` dimensions
/// (`layout` names them in the message), at least one row, and finite values.
void validate_values(const Data& data, const char* what, int64_t rank, const char* layout);

/// Applies `fn` to consecutive batches of at most `chunk` items of `data`, without autograd,
/// and concatenates the results (statistics over whole data sets without holding every
/// activation at once, validation losses).
at::Tensor map_batches(const Data& data, int64_t chunk, const std::function<at::Tensor(const Batch&)>& fn);

/// Built-in kinds (one source file each).
std::shared_ptr<const InputKind> make_tabular_kind();
std::shared_ptr<const InputKind> make_image_kind();
std::shared_ptr<const InputKind> make_series_kind();
std::shared_ptr<const InputKind> make_graph_kind();
std::shared_ptr<const InputKind> make_video_kind();

/// Graph helpers on an edge list, never a dense N x N matrix.
namespace graph {
/// Nodes within `hops` edges of `targets` (edges taken in both directions), sorted.
at::Tensor k_hop_nodes(const at::Tensor& edge_index, int64_t num_nodes, const at::Tensor& targets, int64_t hops);
/// The subgraph on `nodes` (sorted, unique): its edges renumbered to rows of `nodes`,
/// their weights, and the position of each node of `targets` among `nodes`.
Batch induced_subgraph(const Data& data, const at::Tensor& nodes, const at::Tensor& targets);
}  // namespace graph

}  // namespace adx
