#include <adx/detectors/anogan/anogan.hpp>
#include <adx/detectors/anomaly_transformer/anomaly_transformer.hpp>
#include <adx/detectors/cola/cola.hpp>
#include <adx/detectors/dominant/dominant.hpp>
#include <adx/detectors/edge_scorer/edge_scorer.hpp>
#include <adx/detectors/ensemble/ensemble.hpp>
#include <adx/detectors/forecaster/forecaster.hpp>
#include <adx/detectors/lstm_autoencoder/lstm_autoencoder.hpp>
#include <adx/detectors/tcn_autoencoder/tcn_autoencoder.hpp>
#include <adx/detectors/f_anogan/f_anogan.hpp>
#include <adx/detectors/ganomaly/ganomaly.hpp>
#include <adx/detectors/skip_ganomaly/skip_ganomaly.hpp>
#include <adx/detectors/simclr/simclr.hpp>
#include <adx/detectors/padim/padim.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>
#include <adx/detectors/spade/spade.hpp>
#include <adx/detectors/structural/structural.hpp>
#include <adx/detectors/deep_svdd/deep_svdd.hpp>
#include <adx/detectors/autoencoder/autoencoder.hpp>
#include <adx/detectors/conv_autoencoder/conv_autoencoder.hpp>
#include <adx/detectors/denoising_autoencoder/denoising_autoencoder.hpp>
#include <adx/detectors/sparse_autoencoder/sparse_autoencoder.hpp>
#include <adx/detectors/vae/vae.hpp>
#include <adx/detectors/registry.hpp>
#include <adx/detectors/rotation/rotation.hpp>
#include <adx/detectors/draem/draem.hpp>
#include <adx/detectors/nsa/nsa.hpp>
#include <adx/detectors/cutpaste/cutpaste.hpp>
#include <adx/detectors/memae/memae.hpp>
#include <adx/detectors/frame_prediction/frame_prediction.hpp>
#include <adx/detectors/mil/mil.hpp>
#include <adx/detectors/isolation_forest/isolation_forest.hpp>
#include <adx/detectors/matrix_profile/matrix_profile.hpp>

#include <map>
#include <mutex>

namespace adx {
namespace {

struct Entry {
  DetectorFactory factory;
  std::string description;
};

// The explicit table of built-in detectors.
std::map<std::string, Entry> builtin_detectors() {
  return {
      {"autoencoder", {factory_for<Autoencoder>(), "MLP autoencoder, score = reconstruction MSE"}},
      {"denoising_autoencoder",
       {factory_for<DenoisingAutoencoder>(), "autoencoder trained to undo Gaussian/masking/dropout noise"}},
      {"sparse_autoencoder", {factory_for<SparseAutoencoder>(), "autoencoder with a KL sparsity penalty"}},
      {"conv_autoencoder", {factory_for<ConvAutoencoder>(), "convolutional autoencoder for images"}},
      {"vae", {factory_for<Vae>(), "variational autoencoder (beta-ELBO), four scores"}},
      {"deep_svdd", {factory_for<DeepSvdd>(), "Deep SVDD, one-class or soft-boundary hypersphere"}},
      {"ganomaly", {factory_for<Ganomaly>(), "GANomaly: encoder-decoder-encoder GAN, score = ||z - z_hat||^2"}},
      {"patchcore", {factory_for<Patchcore>(), "PatchCore: coreset memory of backbone patch features, nearest-patch map"}},
      {"padim", {factory_for<Padim>(), "PaDiM: per-position Gaussian of backbone features, Mahalanobis map"}},
      {"spade", {factory_for<Spade>(), "SPADE: image kNN on pooled features, pixel kNN over a feature pyramid"}},
      {"skip_ganomaly",
       {factory_for<SkipGanomaly>(), "Skip-GANomaly: U-Net generator, score = 0.9 image + 0.1 feature error"}},
      {"anogan", {factory_for<Anogan>(), "AnoGAN: DCGAN with a batched per-image latent search at score time"}},
      {"f_anogan", {factory_for<FAnogan>(), "f-AnoGAN: WGAN-GP and an izi_f encoder, score = image + kappa * feature residual"}},
      {"simclr", {factory_for<Simclr>(), "SimCLR (NT-Xent) features scored by kNN cosine or SVDD distance"}},
      {"draem", {factory_for<Draem>(), "DRAEM: reconstruction + segmentation of synthetic anomalies; map = anomaly probability"}},
      {"nsa", {factory_for<Nsa>(), "NSA: segments Poisson-blended patches of other normal images; map = anomaly probability"}},
      {"cutpaste", {factory_for<Cutpaste>(), "CutPaste: classifier of cut-paste and scar augmentations, Gaussian density of its features; patch-level map"}},
      {"rotation", {factory_for<Rotation>(), "predicts rotations / GEOM transformations; score = -log-likelihood"}},
      {"anomaly_transformer",
       {factory_for<AnomalyTransformer>(), "Anomaly Transformer: association discrepancy x reconstruction, per step"}},
      {"memae", {factory_for<Memae>(), "MemAE: 3-D conv autoencoder with a sparse memory of normal codes, per frame"}},
      {"frame_prediction",
       {factory_for<FramePrediction>(), "future-frame prediction (U-Net or ConvLSTM), score = -PSNR per frame"}},
      {"mil", {factory_for<Mil>(), "MIL ranking on segment features, weakly supervised by video-level labels"}},
      {"lstm_autoencoder", {factory_for<LstmAutoencoder>(), "repeat-vector LSTM autoencoder over a window, per-step error"}},
      {"tcn_autoencoder",
       {factory_for<TcnAutoencoder>(), "dilated causal convolutions with a pooled code, per-step error"}},
      {"cola", {factory_for<Cola>(), "CoLA: node against sampled neighbourhood subgraphs, contrastive discriminator"}},
      {"dominant", {factory_for<Dominant>(), "DOMINANT: GCN dual reconstruction of attributes and (sparse) structure, per node"}},
      {"edge_scorer", {factory_for<EdgeScorer>(), "GCN embeddings and an MLP on endpoint pairs; unlikely edges score high"}},
      {"structural", {factory_for<Structural>(), "robust z-scores of degree, clustering, triangles, neighbour degree"}},
      {"ensemble", {&Ensemble::create, "normalised scores of member detectors (z-score or rank), mean/max/weighted"}},
      {"forecaster", {factory_for<Forecaster>(), "LSTM forecast of the window's last steps, normalised error"}},
      {"isolation_forest",
       {factory_for<IsolationForest>(), "Isolation Forest: mean path length over random trees (rows, windows, node features)"}},
      {"matrix_profile",
       {factory_for<MatrixProfile>(), "matrix-profile discord: distance to the nearest training window (raw, or z-normalised)"}},
  };
}

std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, Entry>& table() {
  static std::map<std::string, Entry> t = builtin_detectors();
  return t;
}

}  // namespace

void register_detector(const std::string& name, DetectorFactory factory, const std::string& description) {
  ADX_CHECK_AS(OptionError, !name.empty(), "detector name must not be empty");
  ADX_CHECK_AS(OptionError, factory != nullptr, "detector '{}' registered without a factory", name);
  std::lock_guard<std::mutex> lock(table_mutex());
  table()[name] = {std::move(factory), description};
}

std::vector<std::string> detector_names() {
  std::lock_guard<std::mutex> lock(table_mutex());
  std::vector<std::string> names;
  for (const auto& kv : table()) names.push_back(kv.first);
  return names;
}

std::vector<DetectorInfo> detector_infos() {
  std::lock_guard<std::mutex> lock(table_mutex());
  std::vector<DetectorInfo> infos;
  for (const auto& kv : table()) infos.push_back({kv.first, kv.second.description});
  return infos;
}

std::unique_ptr<Detector> make_detector(const std::string& name, const OptionMap& options) {
  DetectorFactory factory;
  {
    std::lock_guard<std::mutex> lock(table_mutex());
    auto it = table().find(name);
    if (it == table().end()) {
      std::string known;
      for (const auto& kv : table()) known += (known.empty() ? "" : ", ") + kv.first;
      throw OptionError(fmt::format("unknown detector '{}'; known detectors: {}", name, known));
    }
    factory = it->second.factory;
  }
  auto detector = factory(options);
  ADX_CHECK_AS(OptionError, detector && detector->type() == name,
               "factory for '{}' made a detector of type '{}'", name, detector ? detector->type() : "null");
  detector->validate_options();
  return detector;
}

std::unique_ptr<Detector> load(const std::string& path, const std::string& device) {
  // Whatever a file makes LibTorch or the standard library throw is reported as an
  // IoError naming the file: a caller handles one error type for a bad model file.
  try {
    ModelFile file = read_model_file(path);
    if (!device.empty()) file.options["runtime.device"] = device;
    auto detector = make_detector(file.type, file.options);
    detector->restore(file);
    return detector;
  } catch (const IoError&) {
    throw;
  } catch (const Error& e) {
    throw IoError(fmt::format("model file '{}' cannot be loaded: {}", path, e.what()));
  } catch (const std::exception& e) {
    throw IoError(fmt::format("model file '{}' cannot be loaded: {}", path, describe_exception(e)));
  }
}

}  // namespace adx
