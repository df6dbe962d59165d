// The scoring server on 127.0.0.1: every endpoint, every kind of bad request, and the
// server still answering afterwards.
#include "test_helpers.hpp"

#include <adx/data/formats/images.hpp>
#include <adx/serve/production.hpp>
#include <adx/serve/server.hpp>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
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

std::unique_ptr<adx::Detector> small_autoencoder(const torch::Tensor& train) {
  auto detector = adx::make_detector("autoencoder", {{"train.epochs", "2"}, {"bottleneck", "3"}, {"runtime.threads", "1"}});
  detector->fit(Data::tabular(train));
  return detector;
}

// A client on a raw socket, to send requests byte by byte.
struct RawClient {
  int sock = -1;
  explicit RawClient(int port) {
    sock = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(sock, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  }
  ~RawClient() { ::close(sock); }
  bool send_text(const std::string& text) { return ::send(sock, text.data(), text.size(), MSG_NOSIGNAL) > 0; }
  std::string received;
  // Whether the server closed the connection (or answered and closed) within `wait`; what it sent is
  // kept in `received`.
  bool closed_within(std::chrono::milliseconds wait) {
    pollfd p{sock, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return false;
    char buffer[4096];
    while (true) {
      const auto n = ::recv(sock, buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return true;
      if (n < 0) return false;  // data, then nothing yet: still open
      received.append(buffer, static_cast<size_t>(n));
    }
  }
};

// A self-signed certificate and its key for 127.0.0.1, written as PEM files.
void write_self_signed(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  REQUIRE(key != nullptr);
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  REQUIRE(X509_sign(cert, key, EVP_sha256()) > 0);
  FILE* c = std::fopen(cert_path.c_str(), "w");
  FILE* k = std::fopen(key_path.c_str(), "w");
  REQUIRE((c != nullptr && k != nullptr));
  REQUIRE(PEM_write_X509(c, cert) == 1);
  REQUIRE(PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  std::fclose(c);
  std::fclose(k);
  X509_free(cert);
  EVP_PKEY_free(key);
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
  adx::ProductionDetector production(small_autoencoder(data.train));
  adx::ScoringServer server(production, adx::ServerOptions().port(0).threads(1).max_queued_connections(0));
  const int port = server.start();
  // The only thread reads a body that stops halfway: its head and first 20 KiB have arrived, so the
  // request has a thread, which waits for the rest.
  RawClient holder(port);
  REQUIRE(holder.send_text("POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Content-Length: 100000\r\n\r\n" + std::string(20 * 1024, ' ')));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  httplib::Client other("127.0.0.1", port);
  const auto started = std::chrono::steady_clock::now();
  const auto busy = other.Get("/livez");
  require_json_error(busy, 503, "busy");
  REQUIRE(busy->get_header_value("Retry-After") == "1");
  REQUIRE(std::chrono::steady_clock::now() - started < std::chrono::seconds(3));  // at once, not after a wait
  ::shutdown(holder.sock, SHUT_RDWR);  // the half body ends; the thread is free again
  int status = 0;
  for (int attempt = 0; attempt < 100 && status != 200; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto again = other.Get("/livez");
    status = again ? again->status : 0;
  }
  REQUIRE(status == 200);
}

TEST_CASE("a client that trickles its request is cut off at the request deadline, and its thread freed", "[server][errors]") {
  const auto data = adx::test::easy_tabular();
  adx::ProductionDetector production(small_autoencoder(data.train));
  adx::ScoringServer server(production, adx::ServerOptions().port(0).threads(1).request_timeout_s(2));
  const int port = server.start();
  RawClient slow(port);
  const auto started = std::chrono::steady_clock::now();
  REQUIRE(slow.send_text("POST /score HTTP/1.1\r\nHost: x\r\n"));
  // A header byte every 300 ms: each read comes well within the idle limit (5 s), so only the deadline
  // for the whole request can end it.
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() - started < std::chrono::seconds(12)) {
    slow.send_text("X");
    closed = slow.closed_within(std::chrono::milliseconds(300));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  REQUIRE(closed);
  REQUIRE(seconds >= 1.5);
  REQUIRE(seconds < 3.5);
  INFO(slow.received);
  REQUIRE(slow.received.rfind("HTTP/1.1 408", 0) == 0);
  REQUIRE(slow.received.find("request_timeout_s") != std::string::npos);
  // The one thread is free again.
  httplib::Client client("127.0.0.1", port);
  REQUIRE(client.Post("/score", rows_json(data.test.slice(0, 0, 2)), "application/json")->status == 200);
}

TEST_CASE("idle and trickling connections hold no thread: a good client is served at once", "[server]") {
  const auto data = adx::test::easy_tabular();
  adx::ProductionDetector production(small_autoencoder(data.train));
  adx::ScoringServer server(production, adx::ServerOptions().port(0).threads(2).max_queued_connections(2));
  const int port = server.start();
  httplib::Client holder("127.0.0.1", port);
  holder.set_keep_alive(true);
  REQUIRE(holder.Get("/livez")->status == 200);  // kept alive, idle from now on
  // Six clients, three times the threads, trickle their request heads.
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 6; ++i) {
    slow.push_back(std::make_unique<RawClient>(port));
    REQUIRE(slow.back()->send_text("POST /score HTTP/1.1\r\nHost: x\r\n"));
  }
  for (int round = 0; round < 3; ++round) {
    for (auto& c : slow) c->send_text("X");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    httplib::Client good("127.0.0.1", port);
    const auto started = std::chrono::steady_clock::now();
    const auto answered = good.Post("/score", rows_json(data.test.slice(0, 0, 2)), "application/json");
    REQUIRE(answered);
    REQUIRE(answered->status == 200);
    REQUIRE(std::chrono::steady_clock::now() - started < std::chrono::milliseconds(1500));
  }
  REQUIRE(holder.Get("/livez")->status == 200);  // the idle kept-alive connection still serves
}

TEST_CASE("the server listens with the backlog asked for, not httplib's 5", "[server]") {
  const auto data = adx::test::easy_tabular();
  adx::ProductionDetector production(small_autoencoder(data.train));
  adx::ScoringServer server(production, adx::ServerOptions().port(0).threads(1).listen_backlog(100));
  const int port = server.start();
  // ss shows a listening socket's backlog in its Send-Q column.
  std::FILE* pipe = ::popen(fmt::format("ss -ltnH 'sport = :{}' 2>&1", port).c_str(), "r");
  REQUIRE(pipe != nullptr);
  char line[512] = {0};
  const bool read = std::fgets(line, sizeof(line), pipe) != nullptr;
  ::pclose(pipe);
  INFO(line);
  REQUIRE(read);
  char state[32] = {0};
  long receive_queue = -1, backlog = -1;
  REQUIRE(std::sscanf(line, "%31s %ld %ld", state, &receive_queue, &backlog) == 3);
  REQUIRE(std::string(state) == "LISTEN");
  REQUIRE(backlog == 100);
}

TEST_CASE("with a certificate and key the server speaks HTTPS only", "[server]") {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("adx_tls_{}", ::getpid());
  std::filesystem::create_directories(dir);
  const auto cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  write_self_signed(cert, key);
  const auto data = adx::test::easy_tabular();
  adx::ProductionDetector production(small_autoencoder(data.train));
  {
    adx::ScoringServer server(production, adx::ServerOptions().port(0).threads(2).tls_cert(cert).tls_key(key));
    const int port = server.start();
    httplib::SSLClient client("127.0.0.1", port);
    client.enable_server_certificate_verification(false);  // self-signed
    const auto live = client.Get("/livez");
    REQUIRE(live);
    REQUIRE(live->status == 200);
    const auto scored = client.Post("/score", rows_json(data.test.slice(0, 0, 3)), "application/json");
    REQUIRE(scored);
    REQUIRE(json::parse(scored->body)["scores"].size() == 3);
    // Plain HTTP gets no answer.
    httplib::Client plain("127.0.0.1", port);
    plain.set_read_timeout(3, 0);
    const auto refused = plain.Get("/livez");
    REQUIRE((!refused || refused->status != 200));
    // The plain request did not upset the server: TLS is still answered.
    REQUIRE(client.Get("/livez")->status == 200);
  }
  // Files that do not make a certificate and key are refused at construction, naming the file.
  REQUIRE_THROWS_WITH(adx::ScoringServer(production, adx::ServerOptions().port(0).tls_cert(cert).tls_key(cert)),
                      Catch::Contains("cert.pem"));
  REQUIRE_THROWS_AS(adx::ScoringServer(production, adx::ServerOptions().port(0).tls_cert(cert)), adx::OptionError);
  std::filesystem::remove_all(dir);
}
