// The scoring server on 127.0.0.1: every endpoint, every kind of bad request, and the
// server still answering afterwards.
#include "test_helpers.hpp"

#include <adx/data/images.hpp>
#include <adx/serve/production.hpp>
#include <adx/serve/server.hpp>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <thread>

using adx::Data;
using json = nlohmann::json;

namespace {

std::string rows_json(const torch::Tensor& x) {
  json rows = json::array();
  const auto v = x.to(torch::kFloat64).contiguous();
  for (int64_t i = 0; i < v.size(0); ++i) {
    json row = json::array();
    for (int64_t j = 0; j < v.size(1); ++j) row.push_back(v[i][j].item<double>());
    rows.push_back(row);
  }
  return json{{"rows", rows}}.dump();
}

void require_json_error(const httplib::Result& r, int status, const std::string& fragment) {
  REQUIRE(r);
  INFO(r->body);
  REQUIRE(r->status == status);
  const auto body = json::parse(r->body);
  REQUIRE(body["error"].get<std::string>().find(fragment) != std::string::npos);
}

}  // namespace

TEST_CASE("the scoring server answers every endpoint and survives bad requests", "[server]") {
  const auto data = adx::test::easy_tabular();
  auto detector = adx::make_detector("autoencoder", {{"train.epochs", "20"}, {"bottleneck", "3"}, {"runtime.threads", "1"}});
  detector->fit(Data::tabular(data.train));
  const auto expected = detector->score(Data::tabular(data.test.slice(0, 0, 5))).to_vector();
  adx::ProductionDetector production(std::move(detector));
  adx::ScoringServer server(production, adx::ServerOptions().port(0).max_body_bytes(64 * 1024).threads(4));
  const int port = server.start();
  REQUIRE(port > 0);
  httplib::Client client("127.0.0.1", port);

  auto scored = client.Post("/score", rows_json(data.test.slice(0, 0, 5)), "application/json");
  REQUIRE(scored);
  REQUIRE(scored->status == 200);
  const auto body = json::parse(scored->body);
  REQUIRE(body["scores"].size() == 5);
  for (size_t i = 0; i < 5; ++i) REQUIRE(body["scores"][i].get<double>() == Approx(expected[i]).epsilon(1e-6));
  REQUIRE(body["ids"][0] == 0);
  REQUIRE(body["threshold"].get<double>() == production.threshold());
  auto one = client.Post("/score", json{{"row", json::parse(rows_json(data.test.slice(0, 0, 1)))["rows"][0]}}.dump(),
                         "application/json");
  REQUIRE(one->status == 200);
  REQUIRE(json::parse(one->body)["ids"][0] == 5);

  auto feedback = client.Post("/feedback", R"({"id": 2, "is_anomaly": false})", "application/json");
  REQUIRE(feedback->status == 200);
  REQUIRE(json::parse(feedback->body)["labels"] == 1);

  // Bad requests: each a 4xx with a JSON error.
  require_json_error(client.Post("/score", "{\"rows\": [[1, 2", "application/json"), 400, "malformed JSON");
  require_json_error(client.Post("/score", R"({"rows": [[1, 2, 3]]})", "application/json"), 400,
                     "takes items of 16 values");
  require_json_error(client.Post("/score", R"({"rows": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, null]]})",
                                 "application/json"),
                     400, "row 0 column 15 is not a number");
  require_json_error(client.Post("/score", R"({"values": 3})", "application/json"), 400, "\"rows\"");
  require_json_error(client.Post("/score", "1,2,3", "text/csv"), 415, "application/json");
  require_json_error(client.Post("/score", std::string(100 * 1024, '['), "application/json"), 413, "max_body_bytes");
  require_json_error(client.Post("/score", std::string("\x89PNG\r\n\x1a\nbroken", 14), "image/png"), 415,
                     "does not take images");
  require_json_error(client.Post("/feedback", R"({"id": 999999, "is_anomaly": true})", "application/json"), 400,
                     "unknown item id 999999");
  require_json_error(client.Post("/feedback", R"({"id": "x"})", "application/json"), 400, "feedback needs");
  require_json_error(client.Get("/nowhere"), 404, "no endpoint GET /nowhere");

  // Still answering, and the failed scoring calls are counted.
  auto health = client.Get("/health");
  REQUIRE(health->status == 200);
  const auto h = json::parse(health->body);
  REQUIRE(h["items_scored"] == 6);
  // Every refused request was the client's fault: rejected, none a model error, and the service is not failing.
  REQUIRE(h["rejected"].get<int>() >= 1);
  REQUIRE(h["errors"] == 0);
  REQUIRE(h["status"] != "failing");
  REQUIRE(client.Get("/livez")->status == 200);
  // Every answer is counted by its status code.
  const auto counted = client.Get("/metrics")->body;
  REQUIRE(counted.find("adx_http_responses_total{code=\"200\"}") != std::string::npos);
  REQUIRE(counted.find("adx_http_responses_total{code=\"413\"} 1") != std::string::npos);
  REQUIRE(counted.find("adx_http_responses_total{code=\"404\"} 1") != std::string::npos);
  const auto ready = client.Get("/readyz");
  REQUIRE(ready->status == 200);
  REQUIRE(json::parse(ready->body)["status"] == "ready");
  auto metrics = client.Get("/metrics");
  REQUIRE(metrics->status == 200);
  REQUIRE(metrics->get_header_value("Content-Type").rfind("text/plain", 0) == 0);
  REQUIRE(metrics->body.find("adx_items_scored_total{detector=\"autoencoder\"") != std::string::npos);
  REQUIRE(client.Post("/score", rows_json(data.test.slice(0, 0, 2)), "application/json")->status == 200);

  // A second server on the same port is a clear error.
  adx::ScoringServer clash(production, adx::ServerOptions().port(port));
  REQUIRE_THROWS_WITH(clash.start(), Catch::Contains("in use"));
  server.stop();
}

TEST_CASE("the scoring server takes PNG images and returns anomaly maps as PNG", "[server]") {
  const auto data = adx::test::easy_images();  // 1 x 16 x 16 stripes; anomalies carry a bright square
  auto detector = adx::make_detector(
      "padim", {{"backbone", "resnet18"}, {"runtime.threads", "2"}});
  const auto rgb = [](const torch::Tensor& x) { return adx::test::nearest_upscale(x, 32).repeat({1, 3, 1, 1}); };
  detector->fit(Data::images(rgb(data.train)));
  adx::ProductionDetector production(std::move(detector));
  adx::ScoringServer server(production, adx::ServerOptions().port(0));
  httplib::Client client("127.0.0.1", server.start());
  const auto anomaly = rgb(data.test).select(0, data.test.size(0) - 1);
  auto png = client.Post("/score?map=png", adx::encode_png(anomaly), "image/png");
  REQUIRE(png);
  INFO(png->body.substr(0, 200));
  REQUIRE(png->status == 200);
  REQUIRE(png->get_header_value("Content-Type") == "image/png");
  const auto map = adx::decode_image(png->body, "response", 1);
  REQUIRE(map.size(1) == 32);
  REQUIRE(std::stod(png->get_header_value("X-Adx-Score")) > 0);
  auto json_reply = client.Post("/score", adx::encode_png(anomaly), "image/png");
  REQUIRE(json_reply->status == 200);
  REQUIRE(json::parse(json_reply->body)["scores"].size() == 1);
  require_json_error(client.Post("/score?map=png", std::string("\x89PNG\r\n\x1a\nbroken", 14), "image/png"), 400,
                     "cannot decode");
}

TEST_CASE("the scoring server refuses hostile bodies before reading or parsing them", "[server][errors]") {
  const auto data = adx::test::easy_tabular();
  auto detector = adx::make_detector("autoencoder", {{"train.epochs", "5"}, {"bottleneck", "3"}, {"runtime.threads", "1"}});
  detector->fit(Data::tabular(data.train));
  adx::ProductionDetector production(std::move(detector));
  adx::ScoringServer server(production, adx::ServerOptions().port(0).max_body_bytes(4 << 20).threads(2));
  httplib::Client client("127.0.0.1", server.start());
  const auto good = rows_json(data.test.slice(0, 0, 2));

  // A million '[' (2 MB, under the size limit) is refused by its depth, before anything recurses into it;
  // so is a small body one level deeper than the limit. Three levels ({"rows": [[...]]}) are served.
  require_json_error(client.Post("/score", std::string(2000000, '['), "application/json"), 400, "nested deeper");
  require_json_error(client.Post("/score", std::string(17, '[') + std::string(17, ']'), "application/json"), 400,
                     "limit of 16 levels");
  // Brackets inside strings are not nesting.
  require_json_error(client.Post("/score", R"({"rows": "[[[[[[[[[[[[[[[[[[[[[[["})", "application/json"), 400,
                     "non-empty array");
  require_json_error(client.Post("/feedback", std::string(100, '{'), "application/json"), 400, "nested deeper");

  // Compressed and chunked bodies would grow past max_body_bytes while read: refused unread.
  require_json_error(client.Post("/score", httplib::Headers{{"Content-Encoding", "gzip"}}, good, "application/json"),
                     415, "Content-Encoding: gzip");
  {
    httplib::Client chunked_client("127.0.0.1", server.port());
    const auto chunked = chunked_client.Post(
        "/score",
        [&](size_t offset, httplib::DataSink& sink) {
          if (offset == 0) sink.write(good.data(), good.size());
          else sink.done();
          return true;
        },
        "application/json");
    require_json_error(chunked, 411, "Content-Length");
  }

  // An input far beyond the training range scores NaN or infinity: it is flagged, never passed as normal,
  // counted, and its id cannot move the threshold.
  std::string huge = "{\"rows\": [[";
  for (int j = 0; j < 16; ++j) huge += std::string(j ? "," : "") + "3e38";
  huge += "]]}";
  const auto scored = client.Post("/score", huge, "application/json");
  REQUIRE(scored);
  INFO(scored->body);
  REQUIRE(scored->status == 200);
  const auto body = json::parse(scored->body);
  // Standardised, 3e38 stays near 3e38, and its squared reconstruction error overflows float32.
  REQUIRE(body["scores"][0].is_null());  // JSON has no NaN or infinity
  REQUIRE(body["flags"][0].get<bool>());
  REQUIRE(production.health().nonfinite_scores == 1);
  const auto metrics = client.Get("/metrics")->body;
  const auto line = metrics.find("\nadx_nonfinite_scores_total{");
  REQUIRE(line != std::string::npos);
  REQUIRE(metrics.substr(line, metrics.find('\n', line + 1) - line).rfind("} 1") != std::string::npos);
  const auto id = body["ids"][0].get<int64_t>();
  require_json_error(client.Post("/feedback", json{{"id", id}, {"is_anomaly", false}}.dump(), "application/json"), 400,
                     "cannot place a threshold");
  REQUIRE(client.Post("/score", good, "application/json")->status == 200);
}

TEST_CASE("with a token, only its holder can send feedback", "[server][errors]") {
  const auto data = adx::test::easy_tabular();
  auto detector = adx::make_detector("autoencoder", {{"train.epochs", "5"}, {"bottleneck", "3"}, {"runtime.threads", "1"}});
  detector->fit(Data::tabular(data.train));
  adx::ProductionDetector production(std::move(detector));
  adx::ScoringServer server(production, adx::ServerOptions().port(0).threads(2).feedback_token("s3cret-token"));
  httplib::Client client("127.0.0.1", server.start());
  REQUIRE(client.Post("/score", rows_json(data.test.slice(0, 0, 2)), "application/json")->status == 200);
  const std::string label = R"({"id": 0, "is_anomaly": false})";
  const auto refused = client.Post("/feedback", label, "application/json");
  require_json_error(refused, 401, "Authorization: Bearer");
  REQUIRE(refused->get_header_value("WWW-Authenticate") == "Bearer");
  require_json_error(client.Post("/feedback", httplib::Headers{{"Authorization", "Bearer s3cret-tokeN"}}, label,
                                 "application/json"),
                     401, "token");
  require_json_error(client.Post("/feedback", httplib::Headers{{"Authorization", "Bearer s3cret"}}, label,
                                 "application/json"),
                     401, "token");
  REQUIRE(production.health().feedback_labels == 0);
  const auto accepted =
      client.Post("/feedback", httplib::Headers{{"Authorization", "Bearer s3cret-token"}}, label, "application/json");
  REQUIRE(accepted->status == 200);
  REQUIRE(production.health().feedback_labels == 1);
}

TEST_CASE("a full server answers 503 with Retry-After at once, and serves again once a thread is free", "[server]") {
  const auto data = adx::test::easy_tabular();
  auto detector = adx::make_detector("autoencoder", {{"train.epochs", "2"}, {"bottleneck", "3"}, {"runtime.threads", "1"}});
  detector->fit(Data::tabular(data.train));
  adx::ProductionDetector production(std::move(detector));
  adx::ScoringServer server(production, adx::ServerOptions().port(0).threads(1).max_queued_connections(0));
  const int port = server.start();
  httplib::Client holder("127.0.0.1", port);
  holder.set_keep_alive(true);
  REQUIRE(holder.Get("/livez")->status == 200);  // the only thread now waits on this kept-alive connection
  httplib::Client other("127.0.0.1", port);
  const auto started = std::chrono::steady_clock::now();
  const auto busy = other.Get("/livez");
  require_json_error(busy, 503, "busy");
  REQUIRE(busy->get_header_value("Retry-After") == "1");
  REQUIRE(std::chrono::steady_clock::now() - started < std::chrono::seconds(3));  // at once, not after a wait
  holder.stop();  // the connection closes and its thread is free again
  int status = 0;
  for (int attempt = 0; attempt < 100 && status != 200; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto again = other.Get("/livez");
    status = again ? again->status : 0;
  }
  REQUIRE(status == 200);
}
