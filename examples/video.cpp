// Video anomaly detection on the synthetic surveillance scene (or your own videos): fit
// each detector, score every frame of the test videos as a stream (bounded memory), and
// report frame-level AUROC (micro over all frames, macro per video) and AP on scores
// normalised per video as the methods' papers do, plus the raw-score AUROC a streaming
// deployment sees. Writes a PNG score curve per test video (one panel per detector, in
// the order given) with the anomalous frames shaded.
//
// MemAE and future-frame prediction learn from normal videos; MIL is weakly supervised
// and also gets videos labelled only "holds an anomaly somewhere" (--weak).
//
//   video                                         the generated scene, all three methods
//   video --detectors "frame_prediction[architecture=convlstm;hidden=64]"   options per entry
//   video --train n1,n2 --weak a1,a2 --test t1 --test-labels t1.txt   frame folders or .npy
//   video --stream-frames 100000                  also stream 10^5 frames and report memory
#include "common/detector_sets.hpp"
#include "common/series_plot.hpp"
#include "common/timing.hpp"

#include <adx/base.hpp>
#include <adx/data/generators/synthetic_video.hpp>
#include <adx/data/formats/video_io.hpp>
#include <adx/detectors/stream.hpp>

#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <algorithm>
#include <map>

namespace {

struct Video {
  torch::Tensor frames;  ///< T x C x H x W
  std::vector<int> labels;
  std::string name;
};

std::vector<int> to_ints(const torch::Tensor& t) {
  const auto c = t.to(torch::kInt32).contiguous();
  return {c.data_ptr<int>(), c.data_ptr<int>() + c.numel()};
}

// Scores one video through a stream fed `piece` frames at a time; returns raw per-frame scores.
std::vector<double> stream_scores(adx::Detector& detector, const torch::Tensor& frames, adx::Windows clips,
                                  int64_t piece = 64) {
  adx::SequenceStream stream(detector, clips);
  std::vector<double> out;
  auto append = [&](const torch::Tensor& s) {
    const auto d = s.to(torch::kFloat64).contiguous();
    out.insert(out.end(), d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  };
  for (int64_t t = 0; t < frames.size(0); t += piece) append(stream.push(frames.slice(0, t, t + piece)));
  append(stream.finish());
  return out;
}

// Settings for a CPU run of a few minutes on 32 x 32 frames; the papers' networks are larger
// (docs/video.md). An entry's own [key=value] and --set override them.
adx::OptionMap example_options(const std::string& detector) {
  if (detector == "memae") return {{"channels", "16,32,64"}, {"slots", "500"}, {"train.epochs", "20"}, {"patch", "4"}};
  if (detector == "frame_prediction") return {{"widths", "16,32,64"}, {"hidden", "32"}, {"train.epochs", "15"}, {"train.lr", "1e-3"}};
  if (detector == "mil") return {{"backbone", "pixels"}, {"grid", "32"}};
  return {};
}

// "name" or "name[key=value;key=value]".
std::pair<std::string, adx::OptionMap> parse_entry(const std::string& entry) {
  const auto open = entry.find('[');
  if (open == std::string::npos) return {entry, {}};
  if (entry.back() != ']') throw adx::OptionError("--detectors entry '" + entry + "' opens [ but does not end with ]");
  adx::OptionMap options;
  std::string body = entry.substr(open + 1, entry.size() - open - 2);
  std::replace(body.begin(), body.end(), ';', ',');
  for (const auto& kv : adx::split_commas(body)) {
    const auto equals = kv.find('=');
    if (equals == std::string::npos) throw adx::OptionError("--detectors entry '" + entry + "': '" + kv + "' is not key=value");
    options[kv.substr(0, equals)] = kv.substr(equals + 1);
  }
  return {entry.substr(0, open), options};
}

// Frames per clip and the training stride each method is built around.
adx::Windows default_clips(const std::string& detector) {
  if (detector == "frame_prediction") return {5, 1};  // 4 context frames and the predicted one
  if (detector == "memae") return {16, 4};            // the paper's 16-frame cuboids
  return {8, 4};                                      // mil: about a segment of a 256-frame video
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"video anomaly detection: per-frame scores on the synthetic surveillance scene or your videos"};
  std::string detector_list = "memae,frame_prediction,frame_prediction[architecture=convlstm],mil",
              out_dir = "video_results";
  std::vector<std::string> train_paths, weak_paths, test_paths, test_label_paths, sets;
  std::string write_scene;
  int64_t size = 32, clip = 0, epochs = 0, stream_frames = 0, scene_videos = 4, weak_videos = 24;
  int threads = 0;
  app.add_option("--detectors", detector_list, "detectors, comma-separated")->capture_default_str();
  app.add_option("--size", size, "frame size (generated scene, or resize of your frames)")->capture_default_str();
  app.add_option("--videos", scene_videos, "generated scene: normal training videos")->capture_default_str();
  app.add_option("--weak-videos", weak_videos, "generated scene: weakly labelled videos (mil)")->capture_default_str();
  app.add_option("--clip", clip, "frames per clip for every detector (default: each method's own)");
  app.add_option("--epochs", epochs, "training epochs (default: each detector's own)");
  app.add_option("--set", sets, "an option of one detector: detector:key=value");
  app.add_option("--threads", threads, "threads (0 = all)")->capture_default_str();
  app.add_option("--out", out_dir, "folder for the score curves")->capture_default_str();
  app.add_option("--train", train_paths, "your normal videos: frame folders or NPY T x H x W [x C]")->delimiter(',');
  app.add_option("--weak", weak_paths, "your videos that hold an anomaly somewhere (for mil)")->delimiter(',');
  app.add_option("--test", test_paths, "your test videos")->delimiter(',');
  app.add_option("--test-labels", test_label_paths, "per-frame labels of the test videos (text or NPY)")->delimiter(',');
  app.add_option("--write-scene", write_scene,
                 "write the generated scene as frame folders and label files under this folder, then stop");
  app.add_option("--stream-frames", stream_frames, "also stream this many frames through each detector and report memory");
  CLI11_PARSE(app, argc, argv);
  try {
    adx::set_num_threads(threads);
    std::vector<Video> train, weak, weak_normal, test;  // weak_normal: more normal videos for mil's bags
    if (train_paths.empty()) {
      adx::SyntheticVideoOptions o;
      o.size = size;
      o.frames = 300;
      using E = adx::VideoEvent;
      for (uint64_t s = 0; s < static_cast<uint64_t>(scene_videos); ++s) {
        o.seed = 100 + s;
        train.push_back({adx::make_surveillance_video(o, {}, 1).frames, {}, "normal"});
      }
      // Weakly labelled videos for MIL: each holds two events, which no label locates.
      const std::vector<std::vector<E>> weak_plans{{E::Speed, E::Appearance}, {E::Direction, E::Loitering},
                                                   {E::ObjectType, E::Speed}, {E::Appearance, E::Direction},
                                                   {E::Loitering, E::ObjectType}};
      for (int64_t v = 0; v < weak_videos; ++v) {
        o.seed = 1000 + static_cast<uint64_t>(v);
        weak.push_back({adx::make_surveillance_video(o, weak_plans[static_cast<size_t>(v) % weak_plans.size()], 1).frames,
                        {},
                        "weak"});
        // As many normal bags as anomalous ones: mil ranks the two against each other.
        if (v >= scene_videos) {
          o.seed = 2000 + static_cast<uint64_t>(v);
          weak_normal.push_back({adx::make_surveillance_video(o, {}, 1).frames, {}, "normal"});
        }
      }
      const std::vector<std::vector<E>> plans{{E::Speed, E::ObjectType, E::Loitering},
                                              {E::Direction, E::Appearance, E::Speed},
                                              {E::Loitering, E::Direction, E::ObjectType}};
      o.frames = 400;
      for (size_t v = 0; v < plans.size(); ++v) {
        o.seed = 200 + v;
        const auto video = adx::make_surveillance_video(o, plans[v], 1);
        std::string name = "test" + std::to_string(v);
        for (const auto& e : video.events) name += "_" + e.kind;
        test.push_back({video.frames, to_ints(video.labels), name});
      }
    } else {
      ADX_CHECK_AS(adx::OptionError, !test_paths.empty() && test_paths.size() == test_label_paths.size(),
                   "--test and --test-labels need one labels file per test video ({} and {})", test_paths.size(),
                   test_label_paths.size());
      for (const auto& p : train_paths) train.push_back({adx::load_video(p, size), {}, p});
      for (const auto& p : weak_paths) weak.push_back({adx::load_video(p, size), {}, p});
      for (size_t v = 0; v < test_paths.size(); ++v) {
        auto frames = adx::load_video(test_paths[v], size);
        test.push_back({frames, to_ints(adx::load_frame_labels(test_label_paths[v], frames.size(0))), test_paths[v]});
      }
    }
    if (!write_scene.empty()) {
      // The layout --train/--weak/--test/--test-labels read: one frame folder per video, labels as text.
      auto write = [&](const std::vector<Video>& videos, const std::string& kind) {
        for (size_t v = 0; v < videos.size(); ++v) {
          const auto folder = fmt::format("{}/{}{}", write_scene, kind, v);
          adx::write_frame_folder(folder, videos[v].frames);
          if (!videos[v].labels.empty()) {
            std::ofstream labels(folder + "_labels.txt");
            for (int l : videos[v].labels) labels << l << "\n";
          }
          std::cout << "wrote " << folder << "\n";
        }
      };
      write(train, "normal");
      write(weak, "weak");
      write(test, "test");
      return 0;
    }
    auto overrides = adx::examples::parse_detector_sets(sets);
    std::filesystem::create_directories(out_dir);
    std::cout << fmt::format("{} normal (mil: {} more) and {} weakly labelled training videos, {} test videos of {} x {} frames, {} thread(s)\n",
                             train.size(), weak_normal.size(), weak.size(), test.size(), test[0].frames.size(2), test[0].frames.size(3),
                             adx::num_threads());
    std::cout << "| detector | frame AUROC (micro) | frame AUROC (macro) | AP | raw-score AUROC | train s | frames/s |\n"
                 "|---|---|---|---|---|---|---|\n";
    std::vector<std::vector<adx::examples::ScoreTrack>> tracks(test.size());
    std::vector<std::string> stream_reports;
    std::vector<std::string> entries;
    {
      // Commas inside [...] belong to the entry.
      std::string current;
      int depth = 0;
      for (char c : detector_list) {
        depth += c == '[' ? 1 : c == ']' ? -1 : 0;
        if (c == ',' && depth == 0) entries.push_back(current), current.clear();
        else current += c;
      }
      if (!current.empty()) entries.push_back(current);
    }
    for (const auto& entry : entries) {
      const auto [name, own] = parse_entry(entry);
      adx::OptionMap options = example_options(name);
      options["runtime.threads"] = std::to_string(threads);
      if (epochs > 0) options["train.epochs"] = std::to_string(epochs);
      for (const auto& kv : own) options[kv.first] = kv.second;
      for (const auto& kv : overrides[name]) options[kv.first] = kv.second;
      auto detector = adx::make_detector(name, options);
      adx::Windows clips = default_clips(name);
      if (clip > 0) clips = {clip, std::max<int64_t>(1, clip / 2)};
      std::vector<torch::Tensor> videos;
      for (const auto& v : train) videos.push_back(v.frames);
      const auto t0 = std::chrono::steady_clock::now();
      if (name == "mil") {
        ADX_CHECK_AS(adx::OptionError, !weak.empty(), "mil learns from weakly labelled videos: give --weak");
        for (const auto& v : weak_normal) videos.push_back(v.frames);
        std::vector<int64_t> labels(videos.size(), 0);
        for (const auto& v : weak) {
          videos.push_back(v.frames);
          labels.push_back(1);
        }
        detector->fit(adx::Data::videos(videos, clips, torch::tensor(labels)));
      } else {
        detector->fit(adx::Data::videos(videos, clips));
      }
      const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::vector<double> all_scores, all_raw;
      std::vector<int> all_labels;
      double macro = 0, score_s = 0;
      int64_t frames = 0;
      const adx::Windows scoring{clips.length, 1};
      for (size_t v = 0; v < test.size(); ++v) {
        const auto t1 = std::chrono::steady_clock::now();
        const auto raw = stream_scores(*detector, test[v].frames, scoring);
        score_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
        frames += static_cast<int64_t>(raw.size());
        const auto normalised = adx::metrics::min_max_per_sequence(raw, {static_cast<int64_t>(raw.size())});
        tracks[v].push_back({normalised, NAN});
        // Frames no clip scored (a predictor's first context frames) are left out, as the papers do.
        std::vector<double> video_scores;
        std::vector<int> video_labels;
        for (size_t t = 0; t < raw.size(); ++t) {
          if (!std::isfinite(raw[t])) continue;
          video_scores.push_back(normalised[t]);
          video_labels.push_back(test[v].labels[t]);
          all_raw.push_back(raw[t]);
        }
        macro += adx::metrics::roc_auc(video_labels, video_scores);
        all_scores.insert(all_scores.end(), video_scores.begin(), video_scores.end());
        all_labels.insert(all_labels.end(), video_labels.begin(), video_labels.end());
      }
      std::cout << fmt::format("| `{}` | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {:.1f} | {:.0f} |\n", entry,
                               adx::metrics::roc_auc(all_labels, all_scores), macro / static_cast<double>(test.size()),
                               adx::metrics::average_precision(all_labels, all_scores),
                               adx::metrics::roc_auc(all_labels, all_raw), train_s, static_cast<double>(frames) / score_s);
      std::cout.flush();
      if (stream_frames > 0) {
        // A long video streamed in pieces of 64 frames, cycling through the test videos' frames:
        // the peak resident memory before and after says whether it stays bounded.
        const double before = adx::examples::peak_rss_mib();
        adx::SequenceStream stream(*detector, scoring);
        int64_t sent = 0, scored = 0;
        const auto t2 = std::chrono::steady_clock::now();
        while (sent < stream_frames) {
          const auto& source = test[static_cast<size_t>(sent / 64) % test.size()].frames;
          const int64_t n = std::min<int64_t>({64, stream_frames - sent, source.size(0)});
          scored += stream.push(source.slice(0, 0, n)).numel();
          sent += n;
        }
        scored += stream.finish().numel();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t2).count();
        stream_reports.push_back(fmt::format("{}: streamed {} frames ({} scored) at {:.0f} frames/s; peak RSS {:.0f} MiB "
                                             "before, {:.0f} MiB after",
                                             entry, sent, scored, static_cast<double>(sent) / seconds, before,
                                             adx::examples::peak_rss_mib()));
      }
    }
    for (const auto& line : stream_reports) std::cout << line << "\n";
    for (size_t v = 0; v < test.size(); ++v) {
      adx::examples::SeriesPlot plot(900, test[v].frames.size(0));
      for (const auto& track : tracks[v]) plot.add_scores(track);
      const auto path = fmt::format("{}/{}.png", out_dir, std::filesystem::path(test[v].name).stem().string());
      plot.write(path, test[v].labels, 0);
      std::cout << "wrote " << path << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
