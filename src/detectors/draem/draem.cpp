#include <adx/detectors/components/self_supervised.hpp>
#include <adx/detectors/draem/draem.hpp>
#include <adx/nn/draem.hpp>
#include <adx/nn/losses.hpp>

#include <cmath>

namespace adx {

struct Draem::Networks : torch::nn::Module {
  Networks(int64_t channels, int64_t reconstruction_width, int64_t segmentation_width)
      : reconstructive(register_module("reconstructive", nn::ReconstructiveNetwork(channels, reconstruction_width))),
        discriminative(register_module("discriminative", nn::DiscriminativeNetwork(2 * channels, segmentation_width))) {}
  nn::ReconstructiveNetwork reconstructive;
  nn::DiscriminativeNetwork discriminative;
};

Draem::Draem(Options options) : DetectorWithOptions(std::move(options)) {
  const auto& o = options_;
  check_image_size_option(o.image_size(), 32);
  ADX_CHECK_AS(OptionError, o.reconstruction_width() >= 1 && o.segmentation_width() >= 1,
               "reconstruction_width and segmentation_width must be >= 1, got {} and {}", o.reconstruction_width(),
               o.segmentation_width());
  ADX_CHECK_AS(OptionError, o.anomaly_probability() >= 0 && o.anomaly_probability() <= 1,
               "anomaly_probability must be in [0, 1], got {}", o.anomaly_probability());
  ADX_CHECK_AS(OptionError, 0 <= o.opacity_min() && o.opacity_min() <= o.opacity_max() && o.opacity_max() < 1,
               "opacities need 0 <= opacity_min <= opacity_max < 1, got {} and {}", o.opacity_min(), o.opacity_max());
  ADX_CHECK_AS(OptionError, o.rotate_probability() >= 0 && o.rotate_probability() <= 1,
               "rotate_probability must be in [0, 1], got {}", o.rotate_probability());
  ADX_CHECK_AS(OptionError, o.score_window() >= 0 && (o.score_window() == 0 || o.score_window() % 2 == 1),
               "score_window must be 0 or odd, got {}", o.score_window());
  check_anomaly_source_options(o.anomaly_source(), o.texture_dir());
}

Draem::~Draem() = default;

torch::nn::Module* Draem::model() { return networks_.get(); }

void Draem::build(const std::vector<int64_t>& item_shape, const InputKind&) {
  const int64_t channels = item_shape[0];
  ADX_CHECK_AS(ShapeError, channels == 1 || channels == 3, "draem takes grey or RGB images, got {} channels", channels);
  // The discriminative network halves the image 5 times.
  std::tie(working_height_, working_width_) = working_size(options_.image_size(), item_shape, 32, type());
  networks_ = std::make_shared<Networks>(channels, options_.reconstruction_width(), options_.segmentation_width());
  networks_->to(device());
}

torch::Tensor Draem::to_working_size(const torch::Tensor& images) const {
  return resize_bilinear(images, working_height_, working_width_);
}

Draem::Example Draem::synthesize(const torch::Tensor& images, at::Generator generator) const {
  ADX_CHECK_AS(ShapeError, images.dim() == 4, "draem synthesizes from N x C x H x W images, got {}",
               shape_string(images.sizes().vec()));
  ADX_CHECK_AS(ValueError, source_ != nullptr, "draem has no anomaly source before fit");
  // Synthesis runs on the CPU, as a data loader would, and the batch moves to the device once.
  const auto cpu = images.detach().to(torch::kCPU, torch::kFloat32);
  PerlinAnomalyOptions perlin;
  perlin.opacity_min = options_.opacity_min();
  perlin.opacity_max = options_.opacity_max();
  auto uniform = [&](double low, double high) {
    return torch::empty({1}, torch::kDouble).uniform_(low, high, generator).item<double>();
  };
  std::vector<torch::Tensor> inputs, targets, masks;
  for (int64_t i = 0; i < cpu.size(0); ++i) {
    auto image = cpu[i];
    if (uniform(0, 1) < options_.rotate_probability()) image = rotate_image(image, uniform(-90, 90));
    torch::Tensor input = image, mask = torch::zeros({image.size(1), image.size(2)});
    if (uniform(0, 1) < options_.anomaly_probability()) {
      const auto source =
          augment_anomaly_source(source_->draw(image.size(0), image.size(1), image.size(2), generator), generator);
      auto anomaly = perlin_anomaly(image, source, generator, perlin);
      input = anomaly.image, mask = anomaly.mask;
    }
    inputs.push_back(input), targets.push_back(image), masks.push_back(mask.unsqueeze(0));
  }
  const auto to = [&](const std::vector<torch::Tensor>& t) { return torch::stack(t).to(images.device(), images.scalar_type()); };
  return {to(inputs), to(targets), to(masks)};
}

torch::Tensor Draem::loss(const torch::Tensor& images, bool training) {
  // Validation draws its anomalies from a generator reset every epoch, so its losses compare.
  const auto example = synthesize(to_working_size(images),
                                  training ? at::detail::getDefaultCPUGenerator() : validation_generator_);
  const auto reconstruction = networks_->reconstructive->forward(example.input);
  const auto logits = networks_->discriminative->forward(torch::cat({reconstruction, example.input}, 1));
  return torch::mse_loss(reconstruction, example.target) + (1 - nn::ssim(reconstruction, example.target)) +
         nn::focal_loss(torch::softmax(logits, 1), example.mask);
}

void Draem::fit_model(const Data& train, const Data& validation) {
  check_unit_range(train.x, type());
  source_ = std::make_unique<AnomalySource>(
      make_anomaly_source(options_.anomaly_source(), options_.texture_dir(), to_working_size(train.x)));
  const auto validation_seed = static_cast<uint64_t>(runtime().seed()) + 1;
  train_module(*networks_, train, validation, options_.train(),
               [&](const Batch& batch, bool training) { return loss(batch.x, training); }, progress(), type(),
               [&](int64_t) { validation_generator_ = at::detail::createCPUGenerator(validation_seed); });
}

torch::Tensor Draem::anomaly_probability(const torch::Tensor& working_images) {
  const auto reconstruction = networks_->reconstructive->forward(working_images);
  const auto logits = networks_->discriminative->forward(torch::cat({reconstruction, working_images}, 1));
  return torch::softmax(logits, 1).slice(1, 1, 2);
}

Scores Draem::score_model(const Batch& batch) {
  networks_->eval();
  const auto probability = anomaly_probability(to_working_size(batch.x));
  Scores s;
  s.per_item = max_of_mean_filtered(probability, options_.score_window() > 0 ? options_.score_window()
                                                                               : default_score_window(working_height_));
  s.pixel_map = resize_bilinear(probability, batch.x.size(2), batch.x.size(3));
  return s;
}

}  // namespace adx
