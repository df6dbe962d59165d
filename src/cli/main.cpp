// The adx command line: list, fit, score, eval, info and serve.
// Exit codes: 0 success, 1 a user error (one line on stderr), 2 a usage error.
#include "inputs.hpp"
#include "option_docs.hpp"

#include <adx/base.hpp>
#include <adx/core/distributed.hpp>
#include <adx/data/formats/images.hpp>
#include <adx/io/files.hpp>
#include <adx/metrics/pixel_metrics.hpp>
#include <adx/metrics/pixel_tensors.hpp>
#include <adx/serve/production.hpp>
#include <adx/serve/server.hpp>

#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <sys/resource.h>
#include <unistd.h>

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

void add_input_flags(CLI::App* cmd, adx::cli::InputOptions& in, bool labels) {
  std::string kinds;
  for (const auto& kind : adx::input_kind_names()) kinds += ", " + kind;
  cmd->add_option("--kind", in.kind, "what the data is: auto" + kinds)->capture_default_str();
  cmd->add_option("--edges", in.edges, "graph: edge list (src,dst[,weight] CSV or NPY); the data are node features");
  cmd->add_option("--window", in.window, "series / video: steps (frames) per window (clip)");
  cmd->add_option("--stride", in.stride, "series / video: steps between windows")->capture_default_str();
  cmd->add_option("--image-size", in.image_size, "image and frame folders: resize every image to S x S");
  cmd->add_option("--channels", in.channels, "image and frame folders: 1 (grey) or 3 (RGB)")->capture_default_str();
  if (labels) {
    cmd->add_option("--labels", in.labels, "labels, one per item: CSV/text, NPY or IDX");
    cmd->add_option("--normal-label", in.normal_label,
                    "the label of normal items (every other is an anomaly); default: 0 normal, else anomaly");
  }
}

// fit --labels/--normal-label: train on the normal items only (one class of a labelled set).
adx::Data normal_items(const adx::Data& data, const adx::cli::InputOptions& in) {
  if (in.labels.empty()) return data;
  // Conventions differ (scikit-learn's one-class labels mark normal items 1), and training on the wrong
  // class fails silently: the normal class is named, never guessed.
  ADX_CHECK_AS(adx::OptionError, !in.normal_label.empty(),
               "--labels at fit needs --normal-label: the label of the normal items to train on (e.g. 0, or 1 in "
               "scikit-learn's convention)");
  ADX_CHECK_AS(adx::OptionError, data.input_kind().traits().rows_are_items,
               "--labels at fit selects rows or images, not {} items", data.kind_name());
  const auto labels = adx::cli::read_labels(in, data.size());
  std::vector<int64_t> keep;
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] == 0) keep.push_back(static_cast<int64_t>(i));
  ADX_CHECK_AS(adx::ValueError, !keep.empty(), "no item is labelled normal in {}", in.labels);
  return data.select(torch::tensor(keep, torch::kLong));
}

std::string markdown_table(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::string out = "| metric | value |\n|---|---|\n";
  for (const auto& [k, v] : rows) out += "| " + k + " | " + v + " |\n";
  return out;
}

int run_list(bool as_json, const std::string& only) {
  json all = json::array();
  for (const auto& info : adx::detector_infos()) {
    if (!only.empty() && info.name != only) continue;
    const auto detector = adx::make_detector(info.name);
    const auto options = detector->options_map();
    const auto kinds = detector->input_kinds();
    json documented = json::object();
    for (const auto& [key, value] : options)
      documented[key] = {{"default", value}, {"doc", adx::cli::option_doc(info.name, key)}};
    all.push_back({{"name", info.name}, {"description", info.description}, {"input_kinds", kinds}, {"options", documented}});
  }
  ADX_CHECK_AS(adx::OptionError, !all.empty(), "unknown detector '{}'; `adx list` shows them all", only);
  if (as_json) {
    std::cout << all.dump(2) << "\n";
    return 0;
  }
  for (const auto& d : all) {
    std::string kinds;
    for (const auto& k : d["input_kinds"]) kinds += (kinds.empty() ? "" : ", ") + k.get<std::string>();
    std::cout << fmt::format("{:<22} {}  [{}]\n", d["name"].get<std::string>(), d["description"].get<std::string>(),
                             kinds);
    if (!only.empty())
      for (const auto& [key, value] : d["options"].items())
        std::cout << fmt::format("    {:<34} = {:<12} {}\n", key, value["default"].get<std::string>(),
                                 value["doc"].get<std::string>());
  }
  if (only.empty()) std::cout << "\n`adx list <detector>` shows a detector's options and their defaults.\n";
  return 0;
}

int run_fit(const std::string& name, const std::string& data_path, const std::vector<std::string>& pairs,
            const std::string& json_file, const std::string& out, const std::string& version, bool progress,
            const adx::cli::InputOptions& in) {
  auto options = adx::cli::read_option_arguments(pairs, json_file);
  auto detector = adx::make_detector(name, options);
  // The output's folder is checked before training, so a typo does not cost a whole fit.
  const auto folder = fs::path(out).parent_path().empty() ? fs::path(".") : fs::path(out).parent_path();
  ADX_CHECK_AS(adx::IoError, fs::is_directory(folder) && access(folder.c_str(), W_OK) == 0,
               "cannot write {}: the folder {} does not exist or is not writable", out, folder.string());
  std::vector<std::string> columns;
  const auto data = normal_items(adx::cli::read_data(data_path, in, &columns), in);
  // ADX_WORLD_SIZE / ADX_RANK / ADX_MASTER_ADDR / ADX_MASTER_PORT (or torchrun's names): data-parallel.
  const auto group = adx::init_distributed_from_environment();
  if (group)
    std::cerr << fmt::format("adx: rank {} of {}, rendezvous at {}:{}\n", group->rank(), group->world_size(),
                             group->options().master_addr, group->options().master_port);
  if (progress && adx::is_main_rank()) detector->set_progress(adx::terminal_progress_bar());
  std::cerr << fmt::format("adx: fitting {} on {} {} items of shape {}\n", name, data.size(), data.kind_name(),
                           adx::shape_string(data.item_shape()));
  detector->fit(data);
  // Drift reports then name a CSV's columns rather than x0, x1, ...
  if (!columns.empty() && columns.size() == detector->drift_reference().feature_names.size())
    detector->set_feature_names(columns);
  if (!version.empty()) detector->set_version(version);
  detector->save(out);
  if (!adx::is_main_rank()) return 0;  // rank 0 writes the file
  std::cerr << fmt::format("adx: wrote {} (threshold {})\n", out,
                           detector->calibrated() ? fmt::format("{:.6g}", detector->threshold()) : "not calibrated");
  return 0;
}

int run_score(const std::string& model_path, const std::string& data_path, const std::string& out,
              const std::string& maps_dir, const std::string& format, const adx::cli::InputOptions& in) {
  ADX_CHECK_AS(adx::OptionError, format == "csv" || format == "json", "--format takes csv or json, got '{}'", format);
  auto detector = adx::load(model_path);
  const auto data = adx::cli::read_data(data_path, in);
  const auto scores = detector->score(data);
  // Checked before anything is written: a failed command leaves no partial output.
  ADX_CHECK_AS(adx::OptionError, maps_dir.empty() || scores.pixel_map.defined(), "{} makes no anomaly maps; drop --maps",
               detector->type());
  const auto values = scores.to_vector();
  const bool calibrated = detector->calibrated();
  const auto flagged = [&](double s) { return adx::is_flagged(s, detector->threshold()); };
  std::string text;
  if (format == "json") {
    nlohmann::json j;
    j["scores"] = values;  // NaN and infinities become null
    if (calibrated) {
      std::vector<bool> flags;
      for (const double s : values) flags.push_back(flagged(s));
      j["flags"] = flags;
      j["threshold"] = detector->threshold();
    }
    text = j.dump() + "\n";
  } else {
    text = calibrated ? "item,score,anomaly\n" : "item,score\n";
    for (size_t i = 0; i < values.size(); ++i) {
      // NaN's sign bit means nothing; "nan" is what CSV readers expect.
      text += std::isnan(values[i]) ? fmt::format("{},nan", i) : fmt::format("{},{:.9g}", i, values[i]);
      if (calibrated) text += flagged(values[i]) ? ",1" : ",0";
      text += "\n";
    }
  }
  if (out.empty() || out == "-") {
    std::cout << text;
  } else {
    adx::write_file_atomically(out, {text}, "scores file");  // a reader never sees a partial file
    std::cerr << fmt::format("adx: wrote {} scores to {}\n", values.size(), out);
  }
  if (!maps_dir.empty()) {
    fs::create_directories(maps_dir);
    // One scale for every map, from 0 to the largest value of any map, so maps compare across images.
    const auto maps = scores.pixel_map;
    const double high = std::max(maps.max().item<double>(), 1e-12);
    for (int64_t i = 0; i < maps.size(0); ++i)
      adx::write_png(fmt::format("{}/map_{:05d}.png", maps_dir, i), (maps[i] / high).clamp(0, 1));
    std::cerr << fmt::format("adx: wrote {} anomaly maps to {}\n", maps.size(0), maps_dir);
  }
  return 0;
}

int run_eval(const std::string& model_path, const std::string& data_path, const std::string& format,
             const adx::cli::InputOptions& in) {
  ADX_CHECK_AS(adx::OptionError, format == "markdown" || format == "json", "--format takes markdown or json, got '{}'",
               format);
  auto detector = adx::load(model_path);
  // An MVTec AD test folder brings its own labels (its folder names) and masks, as anomalib reads it.
  const bool mvtec = in.labels.empty() && adx::cli::is_mvtec_test_folder(data_path);
  adx::cli::MvtecTest folder;
  adx::Data data;
  if (mvtec) {
    const auto& shape = detector->item_shape();
    ADX_CHECK_AS(adx::ShapeError, shape.size() == 3, "{} is an MVTec test folder of images, but the model takes items "
                 "of shape {}", data_path, adx::shape_string(shape));
    folder = adx::cli::read_mvtec_test(data_path, shape[0], shape[1], shape[2]);
    data = folder.images;
    std::cerr << fmt::format("adx: {} test images in {}: labels from the folder names (good = normal), masks from "
                             "ground_truth\n",
                             folder.labels.size(), data_path);
  } else {
    data = adx::cli::read_data(data_path, in);
  }
  const auto scores = detector->score(data);
  // Series and video are judged per step; everything else per item.
  const bool steps = scores.per_step.defined();
  const int64_t judged = steps ? scores.per_step.numel() : scores.per_item.numel();
  const auto all_labels = mvtec ? folder.labels : adx::cli::read_labels(in, judged);
  std::vector<int> labels;
  const auto values = adx::judged_scores(scores, &all_labels, &labels);
  const auto anomalies = std::count(labels.begin(), labels.end(), 1);
  ADX_CHECK_AS(adx::ValueError, anomalies > 0 && anomalies < static_cast<int64_t>(labels.size()),
               "evaluation needs normal and anomalous items; the labels hold {} anomalies among {}", anomalies,
               labels.size());
  // Items or steps without a finite score (steps no window covers, a score that overflowed) cannot be
  // ranked; they are counted and said, never dropped silently.
  const auto left_out = static_cast<int64_t>(all_labels.size() - labels.size());
  if (left_out > 0)
    std::cerr << fmt::format("adx: {} of {} {} have no finite score and are left out of the metrics\n", left_out,
                             all_labels.size(), steps ? "steps" : "items");
  json j{{"detector", detector->type()},
         {"items", labels.size()},
         {"anomalies", anomalies},
         {"auroc", adx::metrics::roc_auc(labels, values)},
         {"average_precision", adx::metrics::average_precision(labels, values)},
         {"best_f1", adx::metrics::best_f1(labels, values).f1},
         {"left_out", left_out}};
  if (mvtec && scores.pixel_map.defined()) {
    // The maps at the masks' size, as the metrics compare pixel by pixel.
    auto maps = scores.pixel_map.to(torch::kFloat32);
    if (maps.size(2) != folder.masks.size(2) || maps.size(3) != folder.masks.size(3))
      maps = torch::nn::functional::interpolate(
          maps, torch::nn::functional::InterpolateFuncOptions()
                    .size(std::vector<int64_t>{folder.masks.size(2), folder.masks.size(3)})
                    .mode(torch::kBilinear)
                    .align_corners(false));
    const auto mask_pixels = adx::metrics::mask_stack(folder.masks);
    const auto map_pixels = adx::metrics::map_stack(maps);
    j["pixel_auroc"] = adx::metrics::pixel_roc_auc(mask_pixels, map_pixels);
    j["aupro"] = adx::metrics::aupro(mask_pixels, map_pixels);
  }
  // Anomalies are the rare class; a majority of them suggests the labels mean the opposite.
  if (!mvtec && 2 * anomalies > static_cast<int64_t>(labels.size()))
    std::cerr << fmt::format("adx: warning: {} of {} items are labelled anomalous; if the labels mark the normal "
                             "items, pass --normal-label with the normal items' label\n",
                             anomalies, labels.size());
  if (!mvtec && in.normal_label.empty() && j["auroc"].get<double>() < 0.5)
    std::cerr << fmt::format("adx: warning: AUROC {:.3f} is below chance; if 1 marks the normal items in {} "
                             "(scikit-learn's convention), pass --normal-label 1\n",
                             j["auroc"].get<double>(), in.labels);
  if (detector->calibrated()) {
    const auto at = adx::metrics::precision_recall_f1(labels, values, detector->threshold());
    j["threshold"] = detector->threshold();
    j["precision"] = at.precision;
    j["recall"] = at.recall;
    j["f1"] = at.f1;
  }
  if (format == "json") {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::vector<std::pair<std::string, std::string>> rows{
      {"detector", detector->type()},
      {steps ? "steps" : "items", std::to_string(labels.size())},
      {"anomalies", std::to_string(anomalies)},
      {"left out (no finite score)", std::to_string(left_out)},
      {"AUROC", fmt::format("{:.4f}", j["auroc"].get<double>())},
      {"average precision", fmt::format("{:.4f}", j["average_precision"].get<double>())},
      {"best F1", fmt::format("{:.4f}", j["best_f1"].get<double>())}};
  if (j.contains("pixel_auroc")) {
    rows.push_back({"pixel AUROC", fmt::format("{:.4f}", j["pixel_auroc"].get<double>())});
    rows.push_back({"AUPRO (FPR up to 0.3)", fmt::format("{:.4f}", j["aupro"].get<double>())});
  }
  if (detector->calibrated()) {
    rows.push_back({"threshold", fmt::format("{:.6g}", detector->threshold())});
    rows.push_back({"precision at threshold", fmt::format("{:.4f}", j["precision"].get<double>())});
    rows.push_back({"recall at threshold", fmt::format("{:.4f}", j["recall"].get<double>())});
    rows.push_back({"F1 at threshold", fmt::format("{:.4f}", j["f1"].get<double>())});
  }
  std::cout << markdown_table(rows);
  return 0;
}

int run_info(const std::string& model_path, bool as_json) {
  const auto file = adx::read_model_file(model_path);
  auto detector = adx::load(model_path);
  const auto& info = detector->model_info();
  uint64_t tensor_bytes = 0;
  for (const auto& [name, tensor] : file.tensors) tensor_bytes += tensor.nbytes();
  json j{{"file", model_path},
         {"bytes", fs::file_size(model_path)},
         {"detector", detector->type()},
         {"input_kind", detector->fitted_kind()->name()},
         {"item_shape", detector->item_shape()},
         {"threshold", detector->calibrated() ? json(detector->threshold()) : json(nullptr)},
         {"version", info.version},
         {"created_at", info.created_at},
         {"adx_version", info.adx_version},
         {"training", {{"items", info.training_items}, {"shape", info.training_shape}, {"hash", info.training_hash}}},
         {"drift_reference",
          {{"features", detector->drift_reference().feature_names.size()},
           {"rows", detector->drift_reference().features.defined() ? detector->drift_reference().features.size(0) : 0},
           {"scores", detector->drift_reference().scores.size()}}},
         {"format_version", file.format_version},
         {"tensors", file.tensors.size()},
         {"tensor_bytes", tensor_bytes},
         {"options", file.options}};
  if (as_json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::string shape;
  for (const auto d : info.training_shape) shape += (shape.empty() ? "" : " x ") + std::to_string(d);
  std::cout << fmt::format(
      "file            {} ({} bytes, format {})\ndetector        {}\ninput kind      {}, items of shape {}\n"
      "threshold       {}\nversion         {}\ncreated at      {}\nadx version     {}\n"
      "training data   {} items, shape {}, FNV-1a {}\ndrift reference {} features x {} rows, {} scores\n"
      "options         {} (adx info --json lists them)\n",
      model_path, j["bytes"].get<uint64_t>(), file.format_version, detector->type(), detector->fitted_kind()->name(),
      adx::shape_string(detector->item_shape()),
      detector->calibrated() ? fmt::format("{:.6g}", detector->threshold()) : std::string("not calibrated"),
      info.version.empty() ? "(not recorded)" : info.version, info.created_at.empty() ? "(not recorded)" : info.created_at,
      info.adx_version.empty() ? "(not recorded)" : info.adx_version, info.training_items, shape.empty() ? "?" : shape,
      info.training_hash.empty() ? "(not recorded)" : info.training_hash, detector->drift_reference().feature_names.size(),
      j["drift_reference"]["rows"].get<int64_t>(), detector->drift_reference().scores.size(), file.options.size());
  return 0;
}

// The model to serve: `model_path`, or the state file saved by an earlier run when it holds the same
// model (same version and training fingerprint) with the threshold that run learned.
std::unique_ptr<adx::Detector> model_to_serve(const std::string& model_path, const std::string& state_path) {
  auto model = adx::load(model_path);
  if (state_path.empty() || !fs::exists(state_path)) return model;
  auto state = adx::load(state_path);
  const auto& a = model->model_info();
  const auto& b = state->model_info();
  if (state->type() != model->type() || a.version != b.version || a.training_hash != b.training_hash) {
    std::cerr << fmt::format("adx: {} holds another model ({} {}); starting from {}'s threshold\n", state_path,
                             state->type(), b.version, model_path);
    return model;
  }
  std::cerr << fmt::format("adx: resuming the threshold {:.6g} learned before (from {}; the file's own is {:.6g})\n",
                           state->threshold(), state_path, model->threshold());
  return state;
}

int run_serve(const std::string& model_path, const adx::ServerOptions& server_options,
              const std::vector<std::string>& pairs, const std::string& state_path, int64_t grace_s) {
  // SIGINT and SIGTERM stop the server cleanly: a thread waits for them (blocked here, before any
  // other thread starts, so no thread takes them by default action). SIGUSR1 is the main thread's
  // wake-up for that thread once the server has ended.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // Each held connection is a file descriptor: allow as many as the system lets this process have.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  const auto production_options =
      adx::from_option_map<adx::ProductionOptions>(adx::cli::read_option_arguments(pairs, ""));
  auto production = std::make_unique<adx::ProductionDetector>(model_to_serve(model_path, state_path), production_options);
  adx::ScoringServer server(*production, server_options);
  const int port = server.start();
  std::cerr << fmt::format("adx: serving {} ({}) on {}://{}:{}  (POST /score, POST /feedback, GET /health, "
                           "GET /livez, GET /readyz, GET /metrics)\n",
                           model_path, production->detector()->type(),
                           server_options.tls_cert().empty() ? "http" : "https", server_options.host(), port);
  auto save_state = [&] {
    if (state_path.empty()) return;
    production->save(state_path);
    std::cerr << fmt::format("adx: saved the threshold in force ({:.6g}) to {}\n", production->threshold(), state_path);
  };
  std::thread stopper([&] {
    int received = 0;
    if (sigwait(&signals, &received) != 0 || received == SIGUSR1) return;
    std::cerr << fmt::format("adx: stopping: no new connections; answering the requests in flight for up to {} s "
                             "(a second signal exits at once)\n",
                             grace_s);
    server.stop();
    // Then the server's end (SIGUSR1 from the main thread), a second signal, or the grace period's end.
    const timespec grace{static_cast<time_t>(grace_s), 0};
    siginfo_t info{};
    received = sigtimedwait(&signals, &info, &grace);
    if (received == SIGUSR1) return;
    if (received < 0) {
      std::cerr << "adx: the grace period ended with requests still in flight; exiting\n";
      save_state();
      std::_Exit(1);
    }
    std::cerr << "adx: second signal, exiting now\n";
    std::_Exit(128 + received);
  });
  server.wait();
  pthread_kill(stopper.native_handle(), SIGUSR1);
  stopper.join();
  save_state();
  std::cerr << "adx: stopped\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"adx: deep anomaly detection from the command line"};
  app.require_subcommand(1);
  app.set_version_flag("--version", adx::adx_version());

  bool list_json = false;
  std::string list_detector;
  auto* list = app.add_subcommand("list", "detectors, the input kinds they take, and their options");
  list->add_option("detector", list_detector, "show this detector's options and their defaults");
  list->add_flag("--json", list_json, "print JSON");

  std::string fit_detector, fit_data, fit_out = "model.adx", fit_json, fit_version;
  std::vector<std::string> fit_pairs;
  bool fit_progress = isatty(STDERR_FILENO), fit_quiet = false;
  adx::cli::InputOptions fit_in;
  auto* fit = app.add_subcommand("fit", "fit a detector on normal data and write its model file");
  fit->add_option("detector", fit_detector, "detector name (adx list)")->required();
  fit->add_option("data", fit_data, "training data: CSV, NPY, IDX or an image folder ('-': CSV on standard input)")
      ->required();
  fit->add_option("options", fit_pairs, "detector options as key=value (e.g. train.epochs=20)");
  fit->add_option("-o,--output", fit_out, "model file to write")->capture_default_str();
  fit->add_option("--options-file", fit_json, "detector options as a JSON object");
  fit->add_option("--version-label", fit_version, "the model's version string (default: <detector>-<UTC time>)");
  fit->add_flag("--progress", fit_progress, "draw a progress bar on stderr (default when stderr is a terminal)");
  fit->add_flag("--quiet", fit_quiet, "no progress bar");
  add_input_flags(fit, fit_in, true);

  std::string score_model, score_data, score_out, score_maps, score_format = "csv";
  adx::cli::InputOptions score_in;
  auto* score = app.add_subcommand("score", "score data with a model file; CSV of scores and flags");
  score->add_option("model", score_model, "model file")->required();
  score->add_option("data", score_data, "data to score ('-': CSV on standard input)")->required();
  score->add_option("-o,--output", score_out, "file to write (default: stdout)");
  score->add_option("--format", score_format,
                    "csv (item,score[,anomaly] rows) or json ({\"scores\", \"flags\", \"threshold\"})")
      ->capture_default_str();
  score->add_option("--maps", score_maps, "folder to write anomaly maps to as PNG (image detectors with maps)");
  add_input_flags(score, score_in, false);

  std::string eval_model, eval_data, eval_format = "markdown";
  adx::cli::InputOptions eval_in;
  auto* eval = app.add_subcommand("eval", "score labelled data and print AUROC, AP and F1");
  eval->add_option("model", eval_model, "model file")->required();
  eval->add_option("data", eval_data,
                   "labelled data ('-': CSV on standard input), or an MVTec AD test folder (<category>/test), "
                   "labelled by its folder names with masks from <category>/ground_truth")
      ->required();
  eval->add_option("--format", eval_format, "markdown or json")->capture_default_str();
  add_input_flags(eval, eval_in, true);

  std::string info_model;
  bool info_json = false;
  auto* info = app.add_subcommand("info", "what a model file holds: detector, version, training fingerprint");
  info->add_option("model", info_model, "model file")->required();
  info->add_flag("--json", info_json, "print JSON");

  std::string serve_model, serve_host = "127.0.0.1", serve_token_file, serve_state;
  int64_t serve_port = 8080, serve_max_body = int64_t{16} << 20, serve_threads = 16, serve_max_depth = 16,
          serve_max_queued = 64, serve_idle_timeout = 5, serve_request_timeout = 30, serve_backlog = 1024,
          serve_grace = 30, serve_max_idle = 1000;
  std::string serve_tls_cert, serve_tls_key;
  std::vector<std::string> serve_pairs;
  auto* serve = app.add_subcommand("serve", "an HTTP scoring server for a model file");
  serve->add_option("model", serve_model, "model file")->required();
  serve->add_option("options", serve_pairs,
                    "production options as key=value (adapt_threshold=true, latency_budget_ms=5, drift_window=1000, ...)");
  serve->add_option("--host", serve_host, "address to listen on")->capture_default_str();
  serve->add_option("--port", serve_port, "port (0 = any free port)")->capture_default_str();
  serve->add_option("--max-body-bytes", serve_max_body, "largest request body")->capture_default_str();
  serve->add_option("--max-json-depth", serve_max_depth, "deepest JSON nesting a request may have")->capture_default_str();
  serve->add_option("--state", serve_state,
                    "model file that keeps the threshold learned in service (feedback, adaptation): written on "
                    "a clean stop, resumed at the next start when it holds the same model");
  serve->add_option("--token-file", serve_token_file,
                    "file holding a token that POST /feedback must bring as \"Authorization: Bearer <token>\"");
  serve->add_option("--max-queued-connections", serve_max_queued,
                    "connections that may wait for a thread; one more is answered 503 with Retry-After")
      ->capture_default_str();
  serve->add_option("--threads", serve_threads,
                    "threads answering requests (at least the number of concurrent clients)")->capture_default_str();
  serve->add_option("--max-idle-connections", serve_max_idle,
                    "connections held without a thread while they wait for a request; beyond it one is closed")
      ->capture_default_str();
  serve->add_option("--idle-timeout", serve_idle_timeout,
                    "seconds a connection may stay silent before a request, or wait on a write")->capture_default_str();
  serve->add_option("--request-timeout", serve_request_timeout,
                    "seconds a client has to send a whole request from its first byte; slower ones get 408")
      ->capture_default_str();
  serve->add_option("--listen-backlog", serve_backlog, "connections the kernel may hold before they are accepted")
      ->capture_default_str();
  serve->add_option("--grace", serve_grace,
                    "seconds a SIGTERM or SIGINT leaves the requests in flight to finish before the server exits")
      ->capture_default_str();
  serve->add_option("--tls-cert", serve_tls_cert, "PEM certificate chain: with --tls-key, serve HTTPS only");
  serve->add_option("--tls-key", serve_tls_key, "PEM private key of --tls-cert");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  try {
    if (*list) return run_list(list_json, list_detector);
    if (*fit) return run_fit(fit_detector, fit_data, fit_pairs, fit_json, fit_out, fit_version,
                             fit_progress && !fit_quiet, fit_in);
    if (*score) return run_score(score_model, score_data, score_out, score_maps, score_format, score_in);
    if (*eval) return run_eval(eval_model, eval_data, eval_format, eval_in);
    if (*info) return run_info(info_model, info_json);
    if (*serve) {
      adx::ServerOptions options;
      options.host(serve_host).port(serve_port).max_body_bytes(serve_max_body).threads(serve_threads).max_json_depth(
          serve_max_depth).max_queued_connections(serve_max_queued);
      options.max_idle_connections(serve_max_idle).idle_timeout_s(serve_idle_timeout).request_timeout_s(serve_request_timeout).listen_backlog(serve_backlog);
      options.tls_cert(serve_tls_cert).tls_key(serve_tls_key);
      if (!serve_token_file.empty()) options.feedback_token(adx::cli::read_token_file(serve_token_file));
      ADX_CHECK_AS(adx::OptionError, serve_grace >= 0, "--grace must be >= 0 s, got {}", serve_grace);
      return run_serve(serve_model, options, serve_pairs, serve_state, serve_grace);
    }
  } catch (const std::exception& e) {  // adx::Error and anything the standard library throws
    std::string message = e.what();
    std::replace(message.begin(), message.end(), '\n', ' ');
    std::cerr << "adx: error: " << message << "\n";
    return 1;
  }
  return 2;
}
