#pragma once
// Anomaly Transformer (Xu et al., ICLR 2022), after the paper and its reference code.
// Each anomaly-attention layer computes two associations of every step in a window:
//   - the series association: ordinary softmax attention;
//   - the prior association: a Gaussian of the distance |i - j| with a learned
//     width sigma per step and head (sigma = 3^(sigmoid(5 s) + 1e-5) - 1), row-normalised.
// Anomalies associate mostly with their neighbours, so their association discrepancy
// (symmetric KL between the two) is small. Training is a minimax with stop-gradients:
//   phase 1 minimises reconstruction - k * discrepancy with the prior detached,
//   phase 2 minimises reconstruction + k * discrepancy with the series association detached.
// The score of a step is softmax over the window of -temperature * discrepancy, times
// the step's reconstruction error.
//
// Defaults are the paper's (window 100 from the data, d_model 512, 8 heads, 3 layers,
// k = 3, lr 1e-4 for two epochs and halved after each later one, 10 epochs, patience 3 on
// both phases' validation losses). small_preset() is a
// CPU-sized model (d_model 64, 4 heads, 2 layers).
#include <adx/detectors/components/bases/reconstruction.hpp>

#include <torch/torch.h>
#include <utility>

namespace adx {

/// What the Anomaly Transformer's early stopping watches on the held-out windows.
enum class AnomalyTransformerStopping {
  BothPhases,      ///< the reference's: an epoch improves only when both phase losses fall
  Reconstruction,  ///< the reconstruction loss alone
};
ADX_ENUM_NAMES(AnomalyTransformerStopping, {AnomalyTransformerStopping::BothPhases, "both_phases"},
               {AnomalyTransformerStopping::Reconstruction, "reconstruction"});

struct AnomalyTransformerOptions {
  ADX_OPTIONS_STRUCT;
  /// Width of the model.
  ADX_ARG(int64_t, d_model) = 512;
  /// Attention heads.
  ADX_ARG(int64_t, heads) = 8;
  /// Encoder layers.
  ADX_ARG(int64_t, layers) = 3;
  /// Width of the position-wise feed-forward layer.
  ADX_ARG(int64_t, d_ff) = 512;
  /// Dropout in attention, feed-forward and embedding (the reference uses 0).
  ADX_ARG(double, dropout) = 0.0;
  /// Weight k of the association discrepancy in the minimax losses.
  ADX_ARG(double, k) = 3.0;
  /// Temperature of the softmax over the window in the anomaly criterion.
  ADX_ARG(double, temperature) = 50.0;
  /// Early stopping's criterion (the reference's by default).
  ADX_ARG(AnomalyTransformerStopping, stop_on) = AnomalyTransformerStopping::BothPhases;
  /// Windows per forward pass when scoring (attention maps grow with heads x window^2).
  ADX_ARG(int64_t, score_chunk) = 64;
  /// Training loop settings (the reference's: Adam, lr 1e-4, 1e-4, 5e-5, …: halved after every epoch
  /// from the second).
  ADX_ARG(TrainOptions, train) = TrainOptions()
                                     .epochs(10)
                                     .batch_size(256)
                                     .lr(1e-4)
                                     .weight_decay(0.0)
                                     .lr_schedule(LrSchedule::Step)
                                     .lr_step(1)
                                     .lr_step_delay(1)
                                     .lr_gamma(0.5)
                                     .patience(3);
  ADX_DETECTOR_OPTIONS(Preprocess::Standardize);

 public:
  /// A CPU-sized model: d_model 64, 4 heads, 2 layers, d_ff 64, and 20 epochs at lr 1e-3, early stopping
  /// on the reconstruction (the reference's rule on both phases stops at the first epoch on CPU-sized runs:
  /// the discrepancy grows, so reconstruction + k * discrepancy rarely falls).
  static AnomalyTransformerOptions small_preset() {
    AnomalyTransformerOptions o;
    o.d_model(64).heads(4).layers(2).d_ff(64).stop_on(AnomalyTransformerStopping::Reconstruction);
    o.train().epochs(20).lr(1e-3).lr_schedule(LrSchedule::Cosine).batch_size(64).patience(5);
    return o;
  }

 public:
  /// Refuses out-of-range values (see check_options); `prefix` names the struct in messages.
  void check(const std::string& prefix) const;
};

/// The network: embedding, anomaly-attention encoder, projection back to the features.
class AnomalyTransformerNetImpl;

/// Forward pass of a batch of windows.
struct AnomalyTransformerOutput {
  torch::Tensor reconstruction;            ///< B x L x D
  std::vector<torch::Tensor> series;       ///< per layer, B x H x L x L (rows sum to 1)
  std::vector<torch::Tensor> prior;        ///< per layer, B x H x L x L, row-normalised
};

class AnomalyTransformerNetImpl : public torch::nn::Module {
 public:
  AnomalyTransformerNetImpl(int64_t features, const AnomalyTransformerOptions& options);
  /// Reconstruction and the associations of every layer.
  AnomalyTransformerOutput run(const torch::Tensor& x);
  /// The reconstruction alone.
  torch::Tensor forward(const torch::Tensor& x) { return run(x).reconstruction; }
  /// The reference's two phase losses: reconstruction - k * discrepancy (prior detached) and
  /// reconstruction + k * discrepancy (series association detached), the discrepancy averaged over layers.
  std::pair<torch::Tensor, torch::Tensor> phase_losses(const torch::Tensor& x, double k);
  /// Minimax training loss: phase 1 + phase 2 of the reference, whose gradients it sums.
  torch::Tensor minimax_loss(const torch::Tensor& x, double k);
  /// Reconstruction error of each step times softmax(-temperature * discrepancy): B x L.
  torch::Tensor criterion(const torch::Tensor& x, double temperature);

 private:
  struct Layer;
  int64_t d_model_, heads_;
  double dropout_;
  torch::nn::Conv1d token_embedding{nullptr};
  torch::nn::ModuleList layers_;
  torch::nn::LayerNorm final_norm{nullptr};
  torch::nn::Linear projection{nullptr};
};
TORCH_MODULE(AnomalyTransformerNet);

/// KL(p || q) per query step as the reference computes it: sum over keys of
/// p (log(p + 1e-4) - log(q + 1e-4)), averaged over heads. B x H x L x L -> B x L.
torch::Tensor association_kl(const torch::Tensor& p, const torch::Tensor& q);

class AnomalyTransformer : public ReconstructionDetector<AnomalyTransformerOptions, AnomalyTransformerNet> {
 public:
  using Options = AnomalyTransformerOptions;
  explicit AnomalyTransformer(Options options = Options());
  std::string type() const override { return "anomaly_transformer"; }
  std::vector<std::string> input_kinds() const override { return {kinds::kSeries}; }

 protected:
  AnomalyTransformerNet make_net(const std::vector<int64_t>& item_shape) override;
  torch::Tensor loss(const torch::Tensor& x, bool training) override;
  Scores score_model(const Batch& batch) override;
  int64_t items_per_scoring_pass() const override { return options_.score_chunk(); }
};

}  // namespace adx
