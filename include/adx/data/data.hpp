#pragma once
// Typed inputs. One `Data` struct carries every input kind; what its fields
// mean, how it is validated, batched and split is the business of its
// InputKind (input_kind.hpp), one small description per kind:
//
//   kind     | x                              | an item is          | scores come back per
//   tabular  | N x D                          | a row               | row
//   image    | N x C x H x W (+ masks)        | an image            | image (+ pixel map)
//   series   | T x D, several series stacked  | a window of `window`| window, and per time step
//   graph    | N x F node features, edge_index| a node              | node
//   video    | T x C x H x W frames, stacked  | a clip of `window`  | clip, and per frame
#include <adx/core/shape.hpp>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adx {

class InputKind;

/// Names of the built-in input kinds, as written into model files.
namespace kinds {
inline constexpr const char* kTabular = "tabular";
inline constexpr const char* kImage = "image";
inline constexpr const char* kSeries = "series";
inline constexpr const char* kGraph = "graph";
inline constexpr const char* kVideo = "video";
}  // namespace kinds

/// Where the windows (series) or clips (video) of a sequence input start.
struct Windows {
  int64_t length = 0;  ///< steps (series) or frames (video) per item
  int64_t stride = 1;  ///< steps between consecutive items; the last item of a sequence always ends at its end
};

/// One data set or batch of any input kind.
struct Data {
  at::Tensor x;            ///< the values: rows, images, stacked series steps, node features or stacked frames
  at::Tensor masks;        ///< image: N x 1 x H x W ground-truth masks (optional)
  at::Tensor labels;       ///< optional labels of rows/images, series steps, nodes or frames (1 = anomaly)
  at::Tensor timestamps;   ///< series: one per step (optional, strictly increasing within a series)
  at::Tensor edge_index;   ///< graph: 2 x E int64 (source, target) node ids
  at::Tensor edge_weight;  ///< graph: E positive weights (optional)
  /// series / video: first step of every window or clip in x; graph: the target nodes.
  /// Undefined for tabular and image data, whose items are the rows of x.
  at::Tensor items;
  std::vector<int64_t> lengths;  ///< series / video: length of each stacked sequence, in order
  Windows windows;               ///< series / video: item length and stride
  /// series / video: one label per sequence (1 = it holds an anomaly somewhere), for weakly
  /// supervised detectors (mil), which learn from these alone; others refuse them at fit.
  at::Tensor sequence_labels;
  int64_t hops = 0;              ///< graph: neighbourhood depth each batch carries (0 = the whole graph)
  const InputKind* kind = nullptr;

  static Data tabular(at::Tensor x);
  static Data images(at::Tensor x, at::Tensor masks = {});
  /// One series T x D (a 1-D tensor is a univariate series), cut into windows.
  static Data series(at::Tensor x, Windows windows, at::Tensor timestamps = {}, at::Tensor labels = {});
  /// Several series with the same feature count; windows never cross from one into the next.
  static Data series(const std::vector<at::Tensor>& sequences, Windows windows);
  /// A graph: node features N x F, edges 2 x E; every node is an item.
  static Data graph(at::Tensor x, at::Tensor edge_index, at::Tensor edge_weight = {}, at::Tensor labels = {});
  /// One video T x C x H x W, cut into clips.
  static Data video(at::Tensor frames, Windows clips, at::Tensor labels = {});
  /// Several videos with the same frame size; clips never cross from one into the next.
  /// `video_labels` (one 0/1 per video) are for weakly supervised training (sequence_labels).
  static Data videos(const std::vector<at::Tensor>& videos, Windows clips, at::Tensor video_labels = {});

  const InputKind& input_kind() const;
  std::string kind_name() const;
  /// Number of items: rows, images, windows, nodes or clips.
  int64_t size() const;
  /// Shape of one item (a row, an image, a window, a node's features, a clip).
  std::vector<int64_t> item_shape() const;
  /// Items [begin, end), sharing storage where the kind allows.
  Data slice(int64_t begin, int64_t end) const;
  /// Items at the given indices.
  Data select(const at::Tensor& indices) const;
};

/// Items stacked for a network: what a training step and a scoring pass receive.
struct Batch {
  at::Tensor x;            ///< B x item shape; graph: features of the batch's nodes
  at::Tensor masks;        ///< image masks, when the data has them
  at::Tensor edge_index;   ///< graph: edges among the batch's nodes (ids are rows of x)
  at::Tensor edge_weight;  ///< graph: their weights (undefined = 1)
  at::Tensor targets;      ///< graph: rows of x that are the batch's items; undefined = every row
  int64_t size() const { return targets.defined() ? targets.size(0) : (x.defined() ? x.size(0) : 0); }
};

/// Result of score(): higher means more anomalous.
struct Scores {
  at::Tensor per_item;  ///< one score per item (float32, CPU)
  at::Tensor pixel_map; ///< image: optional N x 1 x H x W map
  /// series / video, from a detector's score_model: optional items x length score of every step of
  /// each window/clip of one chunk (NaN = not scored there). score() sums them into per_step as it
  /// goes and does not return them.
  at::Tensor step_map;
  /// series / video, assembled by the input kind: one score per step of x (the mean over all windows
  /// or clips covering it; NaN where none does).
  at::Tensor per_step;
  /// series / video: how many windows or clips scored each step (per_step is their mean), so that
  /// scores of consecutive chunks of a stream can be merged exactly.
  at::Tensor per_step_count;
  std::vector<double> to_vector() const;
};

/// The scores a threshold judges: per step where the kind has steps, else per item, keeping only
/// finite values (a step no window scored is left out). With `labels` (one per step or item), the
/// labels of the kept scores are appended to `kept_labels`.
std::vector<double> judged_scores(const Scores& scores, const std::vector<int>* labels = nullptr,
                                  std::vector<int>* kept_labels = nullptr);

/// Checks the data with its kind's rules; throws ShapeError / ValueError naming `what` and the values.
void validate(const Data& data, const char* what);

/// Throws ValueError if `x` holds NaN or Inf, with the count and the first bad row of x
/// (`unit` names a row: item, step, node, frame).
void check_finite(const at::Tensor& x, const char* what, const char* unit = "item");

}  // namespace adx
