// The video detectors (MemAE, future-frame prediction, MIL ranking) on the surveillance
// generator, their losses against hand-worked values, video files, weak labels, and
// streaming scores that equal the whole video's.
#include "test_helpers.hpp"

#include <adx/data/generators/synthetic_video.hpp>
#include <adx/data/formats/video_io.hpp>
#include <adx/data/formats/loaders.hpp>
#include <adx/detectors/frame_prediction/frame_prediction.hpp>
#include <adx/detectors/memae/memae.hpp>
#include <adx/detectors/mil/mil.hpp>
#include <adx/detectors/registry.hpp>
#include <adx/detectors/stream.hpp>
#include <adx/metrics/metrics.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

using adx::Data;
using adx::test::temp_path;
using E = adx::VideoEvent;

namespace {

std::vector<torch::Tensor> normal_videos(int count, int64_t frames, uint64_t first_seed) {
  adx::SyntheticVideoOptions o;
  o.frames = frames;
  std::vector<torch::Tensor> out;
  for (int k = 0; k < count; ++k) {
    o.seed = first_seed + static_cast<uint64_t>(k);
    out.push_back(adx::make_surveillance_video(o, {}, 1).frames);
  }
  return out;
}

adx::SyntheticVideo test_video(const std::vector<E>& events, int64_t frames = 260, uint64_t seed = 20) {
  adx::SyntheticVideoOptions o;
  o.frames = frames;
  o.seed = seed;
  return adx::make_surveillance_video(o, events, 1);
}

// Frames no clip scored (a predictor's first context frames) are left out, as the papers' evaluations do.
double frame_auroc(const adx::Scores& scores, const torch::Tensor& labels) {
  const auto scored = scores.per_step.isfinite();
  return adx::metrics::roc_auc(adx::test::to_ints(labels.masked_select(scored)),
                               adx::test::to_doubles(scores.per_step.masked_select(scored)));
}

// Equal scores, NaN (a frame no clip scored) where the other has NaN.
bool same_scores(const torch::Tensor& a, const torch::Tensor& b) {
  return torch::equal(a.isnan(), b.isnan()) && torch::equal(a.nan_to_num(0), b.nan_to_num(0));
}

adx::RuntimeOptions quick_runtime() { return adx::RuntimeOptions().threads(2).seed(1); }

}  // namespace

TEST_CASE("MemAE finds the generator's events and reloads to identical frame scores", "[video][detectors]") {
  const auto train = normal_videos(3, 200, 10);
  // The events a frame's reconstruction error sees: objects of another shape and a walker crossing
  // the lanes (the example measures all five kinds).
  const auto test = test_video({E::ObjectType, E::Direction});
  adx::Memae memae(adx::MemaeOptions()
                       .channels({8, 16})
                       .slots(50)
                       .patch(4)
                       .train(adx::TrainOptions().epochs(12).batch_size(16).lr(1e-3))
                       .runtime(quick_runtime()));
  memae.fit(Data::videos(train, {8, 4}));
  const auto scores = memae.score(Data::video(test.frames, {8, 2}));
  REQUIRE(scores.per_step.size(0) == 260);
  const double auroc = frame_auroc(scores, test.labels);
  INFO("MemAE frame AUROC " << auroc);
  REQUIRE(auroc > 0.7);

  memae.save(temp_path("memae.adx"));
  auto loaded = adx::load(temp_path("memae.adx"));
  REQUIRE(torch::equal(loaded->score(Data::video(test.frames, {8, 2})).per_step, scores.per_step));
}

TEST_CASE("future-frame prediction (U-Net and ConvLSTM) finds the generator's events", "[video][detectors]") {
  const auto train = normal_videos(3, 160, 30);
  const auto test = test_video({E::ObjectType, E::Direction, E::Speed}, 300);
  for (const auto architecture : {adx::PredictorArchitecture::Unet, adx::PredictorArchitecture::ConvLstm}) {
    INFO(architecture);
    adx::FramePrediction fp(adx::FramePredictionOptions()
                                .architecture(architecture)
                                .widths({8, 16, 32})
                                .hidden(32)
                                .train(adx::TrainOptions().epochs(12).batch_size(16).lr(1e-3).weight_decay(0))
                                .runtime(quick_runtime()));
    fp.fit(Data::videos(train, {5, 1}));
    const auto scores = fp.score(Data::video(test.frames, {5, 1}));
    // The first 4 frames have no context and get no score; every other frame exactly one.
    REQUIRE(std::isnan(scores.per_step[3].item<float>()));
    REQUIRE(std::isfinite(scores.per_step[4].item<float>()));
    const double auroc = frame_auroc(scores, test.labels);
    INFO("frame AUROC " << auroc);
    // Measured 0.71 (U-Net) and 0.79 (ConvLSTM) here; chance is 0.5.
    REQUIRE(auroc > 0.65);
    if (architecture == adx::PredictorArchitecture::Unet) {
      fp.save(temp_path("frame_prediction.adx"));
      auto loaded = adx::load(temp_path("frame_prediction.adx"));
      REQUIRE(same_scores(loaded->score(Data::video(test.frames, {5, 1})).per_step, scores.per_step));
    }
  }
  // With the adversarial loss: a discriminator trains alongside and is saved with the model.
  adx::FramePrediction gan(adx::FramePredictionOptions()
                               .widths({8, 16})
                               .adversarial_weight(0.05)
                               .train(adx::TrainOptions().epochs(1).batch_size(16).lr(2e-3))
                               .runtime(quick_runtime()));
  gan.fit(Data::videos({train[0]}, {5, 2}));
  REQUIRE(gan.net()->discriminator);
  gan.save(temp_path("frame_prediction_gan.adx"));
  REQUIRE(same_scores(adx::load(temp_path("frame_prediction_gan.adx"))->score(Data::video(test.frames, {5, 1})).per_step,
                      gan.score(Data::video(test.frames, {5, 1})).per_step));
  // Clips must hold the context and the predicted frame.
  adx::FramePrediction short_clips(adx::FramePredictionOptions().widths({4}).runtime(quick_runtime()));
  REQUIRE_THROWS_AS(short_clips.fit(Data::videos(train, {4, 1})), adx::OptionError);
  REQUIRE_THROWS_AS(adx::make_detector("frame_prediction", {{"architecture", "lstm"}}), adx::OptionError);
}

TEST_CASE("PSNR and the gradient loss match values worked by hand", "[video][metrics]") {
  // One frame 1 x 2 x 2: the prediction is off by 0.1 everywhere -> MSE 0.01 -> PSNR 20 dB.
  const auto target = torch::tensor({0.0f, 0.5f, 1.0f, 0.5f}).reshape({1, 1, 2, 2});
  REQUIRE(adx::psnr((target + 0.1).unsqueeze(0), target.unsqueeze(0)).item<double>() == Approx(20.0).epsilon(1e-5));
  // A 4 x 4 frame whose error is 0.2 in one pixel only: MSE 0.04 / 16 = 0.0025 (26.02 dB) over the
  // frame, 0.04 / 4 = 0.01 (20 dB) over the worst 2 x 2 patch.
  auto error = torch::zeros({1, 1, 1, 4, 4});
  error[0][0][0][2][3] = 0.2f;
  REQUIRE(adx::psnr(error, torch::zeros_like(error)).item<double>() == Approx(26.0206).epsilon(1e-4));
  REQUIRE(adx::psnr(error, torch::zeros_like(error), 2).item<double>() == Approx(20.0).epsilon(1e-4));
  // Target rows (0, .5) and (1, .5); prediction all 0.25. Target |dx| = (.5, .5), |dy| = (1, 0);
  // prediction gradients 0: loss = mean(.5, .5) + mean(1, 0) = 1.
  REQUIRE(adx::gradient_difference_loss(torch::full({1, 1, 2, 2}, 0.25), target).item<double>() == Approx(1.0));
}

TEST_CASE("the MIL ranking loss and segments match values worked by hand", "[video][metrics]") {
  // Anomalous bag (0.2, 0.9, 0.4), normal bag (0.3, 0.5, 0.1): hinge 1 - 0.9 + 0.5 = 0.6;
  // smoothness (0.7^2 + 0.5^2) = 0.74; sparsity 1.5. With weights 0.1 and 0.01: 0.6 + 0.074 + 0.015.
  const auto a = torch::tensor({0.2, 0.9, 0.4}, torch::kFloat64).reshape({1, 3});
  const auto n = torch::tensor({0.3, 0.5, 0.1}, torch::kFloat64).reshape({1, 3});
  REQUIRE(adx::mil_ranking_loss(a, n, 0.1, 0.01).item<double>() == Approx(0.689));
  // A normal bag scored well below: only the smoothness and sparsity terms are left.
  REQUIRE(adx::mil_ranking_loss(a, n * 0 - 0.2, 0.0, 0.0).item<double>() == Approx(0.0));
  REQUIRE(adx::segment_bounds(10, 4) == std::vector<int64_t>{0, 2, 5, 7, 10});
  REQUIRE(adx::segment_bounds(3, 32) == std::vector<int64_t>{0, 1, 2, 3});
}

TEST_CASE("MIL learns from video-level labels alone and refuses unlabelled videos", "[video][detectors][weak]") {
  // Six normal videos and six that hold an event somewhere (a vehicle, a dark striped walker); only
  // the videos are labelled, never the frames.
  auto videos = normal_videos(6, 240, 40);
  for (uint64_t k = 0; k < 6; ++k)
    videos.push_back(test_video(k % 2 ? std::vector<E>{E::ObjectType, E::Appearance} : std::vector<E>{E::ObjectType}, 240,
                                50 + k)
                         .frames);
  const auto video_labels = torch::tensor({0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1});
  adx::Mil mil(adx::MilOptions()
                   .backbone("pixels")
                   .grid(32)
                   .segments(16)
                   .train(adx::TrainOptions().epochs(300).batch_size(8).lr(1e-3).weight_decay(1e-3))
                   .runtime(quick_runtime()));
  mil.fit(Data::videos(videos, {8, 4}, video_labels));
  REQUIRE(mil.calibrated());
  const auto test = test_video({E::ObjectType, E::Appearance}, 300, 60);
  const auto scores = mil.score(Data::video(test.frames, {8, 2}));
  const double auroc = frame_auroc(scores, test.labels);
  INFO("MIL frame AUROC " << auroc);
  REQUIRE(auroc > 0.7);
  mil.save(temp_path("mil.adx"));
  REQUIRE(torch::equal(adx::load(temp_path("mil.adx"))->score(Data::video(test.frames, {8, 2})).per_step,
                       scores.per_step));

  // The weak labels are checked: none, a count that is not one per video, a value that is not 0/1,
  // and one class only; a detector that learns from normal data refuses them.
  adx::Mil quick(adx::MilOptions().backbone("none").train(adx::TrainOptions().epochs(2).batch_size(4)));
  const std::vector<torch::Tensor> tiny{torch::rand({20, 3, 1, 1}), torch::rand({20, 3, 1, 1})};
  REQUIRE_THROWS_AS(quick.fit(Data::videos(tiny, {4, 2})), adx::ValueError);
  REQUIRE_THROWS_AS(quick.fit(Data::videos(tiny, {4, 2}, torch::tensor({0, 1, 1}))), adx::ShapeError);
  REQUIRE_THROWS_AS(quick.fit(Data::videos(tiny, {4, 2}, torch::tensor({0, 2}))), adx::ValueError);
  REQUIRE_THROWS_AS(quick.fit(Data::videos(tiny, {4, 2}, torch::tensor({1, 1}))), adx::ValueError);
  quick.fit(Data::videos(tiny, {4, 2}, torch::tensor({0, 1})));
  REQUIRE(quick.fitted());
  adx::Memae memae(adx::MemaeOptions().channels({4}).slots(4));
  REQUIRE_THROWS_AS(memae.fit(Data::videos(tiny, {4, 2}, torch::tensor({0, 1}))), adx::ValueError);
}

TEST_CASE("a streamed video gets the scores of the whole video, in bounded memory", "[video][stream]") {
  const auto train = normal_videos(1, 120, 70);
  adx::FramePrediction fp(adx::FramePredictionOptions()
                              .architecture(adx::PredictorArchitecture::ConvLstm)
                              .hidden(8)
                              .train(adx::TrainOptions().epochs(1).batch_size(16))
                              .runtime(quick_runtime()));
  fp.fit(Data::videos(train, {6, 1}));
  const auto video = test_video({E::Speed}, 203, 71).frames;
  for (const adx::Windows clips : {adx::Windows{6, 1}, adx::Windows{6, 4}}) {
    INFO("clips " << clips.length << " stride " << clips.stride);
    const auto whole = fp.score(Data::video(video, clips)).per_step;
    adx::SequenceStream stream(fp, clips, /*chunk_clips=*/5);
    std::vector<torch::Tensor> parts;
    int64_t most_buffered = 0;
    for (int64_t t = 0; t < video.size(0); t += 11) {  // pieces of 11 frames, unaligned with the chunks
      parts.push_back(stream.push(video.slice(0, t, t + 11)));
      most_buffered = std::max(most_buffered, stream.buffered());
    }
    parts.push_back(stream.finish());
    const auto streamed = torch::cat(parts);
    REQUIRE(streamed.size(0) == 203);
    REQUIRE(torch::equal(streamed.isnan(), whole.isnan()));
    const auto finite = whole.isfinite();
    REQUIRE(torch::allclose(streamed.masked_select(finite), whole.masked_select(finite), 1e-5, 1e-5));
    // One chunk of clips, the last clip and one piece: never the whole video.
    REQUIRE(most_buffered <= 4 * clips.stride + clips.length + 11 + clips.length);
  }
  adx::SequenceStream stream(fp, {6, 1});
  stream.push(video.slice(0, 0, 3));
  REQUIRE_THROWS_AS(stream.finish(), adx::ShapeError);
  REQUIRE_THROWS_AS(stream.push(torch::rand({2, 1, 16, 16})), adx::ShapeError);
}

TEST_CASE("videos load from frame folders and NPY, with frame labels from text or NPY", "[video][io]") {
  const auto video = test_video({}, 110, 80).frames.slice(0, 0, 12);
  const auto folder = temp_path("video_frames");
  std::filesystem::remove_all(folder);
  adx::write_frame_folder(folder, video);
  adx::VideoReader reader(folder);
  REQUIRE(reader.frames() == 12);
  // PNG keeps 8 bits: within half a grey level.
  REQUIRE((reader.read_all() - video).abs().max().item<double>() <= 0.5 / 255 + 1e-6);
  REQUIRE(torch::equal(reader.read(3, 5), reader.read_all().slice(0, 3, 5)));
  REQUIRE(adx::VideoReader(folder, 16).read(0, 1).sizes() == torch::IntArrayRef({1, 1, 16, 16}));
  REQUIRE_THROWS_AS(reader.read(10, 13), adx::ValueError);

  // NPY T x H x W x C in bytes, and T x H x W as floats.
  const auto bytes = (video.permute({0, 2, 3, 1}) * 255).round().to(torch::kUInt8);
  adx::save_npy(temp_path("video.npy"), bytes);
  REQUIRE(torch::allclose(adx::load_video(temp_path("video.npy")), bytes.permute({0, 3, 1, 2}).to(torch::kFloat32) / 255));
  adx::save_npy(temp_path("video_thw.npy"), video.squeeze(1));
  REQUIRE(torch::equal(adx::load_video(temp_path("video_thw.npy")), video));
  adx::save_npy(temp_path("not_video.npy"), torch::rand({5}));
  REQUIRE_THROWS_AS(adx::load_video(temp_path("not_video.npy")), adx::ShapeError);
  REQUIRE_THROWS_AS(adx::load_video(temp_path("no_such_video")), adx::IoError);

  {
    std::ofstream(temp_path("labels.txt")) << "0 0 1\n1,0\n0\n";
  }
  REQUIRE(torch::equal(adx::load_frame_labels(temp_path("labels.txt"), 6), torch::tensor({0, 0, 1, 1, 0, 0}, torch::kLong)));
  REQUIRE_THROWS_AS(adx::load_frame_labels(temp_path("labels.txt"), 7), adx::ShapeError);
  adx::save_npy(temp_path("labels.npy"), torch::tensor({0.0f, 1.0f, 2.0f}));
  REQUIRE_THROWS_AS(adx::load_frame_labels(temp_path("labels.npy"), 3), adx::ValueError);
  {
    std::ofstream(temp_path("bad_labels.txt")) << "0 1 x\n";
  }
  REQUIRE_THROWS_AS(adx::load_frame_labels(temp_path("bad_labels.txt"), 3), adx::ValueError);
}
