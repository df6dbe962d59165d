// A kind added in one file (toy_kind.hpp) plus one registration line goes through every layer that takes
// data: reading from a file (what the adx command calls), fit, score, save, load, and the scoring server.
#include "test_helpers.hpp"
#include "toy_kind.hpp"

#include <adx/detectors/autoencoder/autoencoder.hpp>
#include <adx/serve/production.hpp>
#include <adx/serve/server.hpp>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fstream>

namespace {

// A built-in network on the user's kind: the autoencoder, accepting spectra.
class SpectraAutoencoder : public adx::Autoencoder {
 public:
  using Autoencoder::Autoencoder;
  std::string type() const override { return "spectra_autoencoder"; }
  std::vector<std::string> input_kinds() const override { return {"spectra"}; }
};

// Spectra of 16 bins with one peak: at bin 5 for normal items, at bin 11 for anomalies.
torch::Tensor spectra(int64_t n, double peak) {
  const auto bins = torch::arange(16, torch::kFloat32);
  const auto heights = 1.0 + 0.2 * torch::rand({n, 1});
  return heights * torch::exp(-(bins - peak).pow(2) / 4.5).unsqueeze(0) + 0.05 * torch::randn({n, 16});
}

void write_spectra(const std::string& path, const torch::Tensor& rows) {
  std::ofstream out(path);
  const auto v = rows.to(torch::kFloat64).contiguous();
  for (int64_t i = 0; i < v.size(0); ++i) {
    for (int64_t j = 0; j < v.size(1); ++j) out << (j ? " " : "") << v[i][j].item<double>();
    out << "\n";
  }
}

}  // namespace

TEST_CASE("a kind added in one file is read, fitted, scored, saved, loaded and served", "[kinds][server]") {
  adx::register_input_kind(std::make_shared<adx::test::SpectraKind>());
  adx::register_detector("spectra_autoencoder", adx::factory_for<SpectraAutoencoder>(),
                         "test: the autoencoder on spectra");
  torch::manual_seed(7);
  const auto train_path = adx::test::temp_path("spectra_train.txt");
  const auto test_path = adx::test::temp_path("spectra_test.txt");
  write_spectra(train_path, spectra(300, 5.0));
  const auto test_rows = torch::cat({spectra(60, 5.0), spectra(15, 11.0)});
  write_spectra(test_path, test_rows);
  std::vector<int> labels(60, 0);
  labels.resize(75, 1);

  const auto train = adx::read_input(train_path, "spectra");
  const auto test = adx::read_input(test_path, "spectra");
  REQUIRE(train.kind_name() == "spectra");
  REQUIRE(train.item_shape() == std::vector<int64_t>{1, 16});
  REQUIRE(test.size() == 75);
  REQUIRE_THROWS_AS(adx::read_input(adx::test::temp_path("no_such_spectra.txt"), "spectra"), adx::IoError);

  auto detector = adx::make_detector(
      "spectra_autoencoder", {{"train.epochs", "30"}, {"bottleneck", "2"}, {"runtime.seed", "1"}, {"runtime.threads", "1"}});
  detector->fit(train);
  const auto scores = detector->score(test).to_vector();
  const double auroc = adx::metrics::roc_auc(labels, scores);
  INFO("AUROC " << auroc);
  REQUIRE(auroc > 0.9);

  const auto model_path = adx::test::temp_path("spectra_autoencoder.adx");
  detector->save(model_path);
  auto loaded = adx::load(model_path);
  REQUIRE(loaded->fitted_kind()->name() == "spectra");
  REQUIRE(loaded->score(test).to_vector() == scores);

  // The server takes rows of a kind whose items are rows, in the item's shape flattened.
  adx::ProductionDetector production(std::move(loaded));
  adx::ScoringServer server(production, adx::ServerOptions().port(0).threads(2));
  const int port = server.start();
  REQUIRE(port > 0);
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t i = 0; i < 3; ++i) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t j = 0; j < 16; ++j) row.push_back(test.x[i][0][j].item<double>());
    rows.push_back(row);
  }
  httplib::Client client("127.0.0.1", port);
  const auto reply = client.Post("/score", nlohmann::json{{"rows", rows}}.dump(), "application/json");
  REQUIRE(reply);
  INFO(reply->body);
  REQUIRE(reply->status == 200);
  const auto body = nlohmann::json::parse(reply->body);
  for (size_t i = 0; i < 3; ++i) REQUIRE(body["scores"][i].get<double>() == Approx(scores[i]).epsilon(1e-6));
  server.stop();
}
