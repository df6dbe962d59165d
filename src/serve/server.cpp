#include <adx/core/error.hpp>
#include <adx/data/formats/images.hpp>
#include <adx/serve/production.hpp>
#include <adx/serve/server.hpp>

#include "connection.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

namespace adx {

void ServerOptions::check(const std::string& prefix) const {
  const OptionChecks checks(prefix);
  checks.in("port", port(), 0, 65535)
      .at_least("max_body_bytes", max_body_bytes(), 1)
      .in("threads", threads(), 1, 1024)
      .in("max_queued_connections", max_queued_connections(), 0, 100000)
      .in("idle_timeout_s", idle_timeout_s(), 1, 3600)
      .in("max_idle_connections", max_idle_connections(), 1, 1000000)
      .in("request_timeout_s", request_timeout_s(), 1, 3600)
      .in("listen_backlog", listen_backlog(), 1, 65535)
      .that(tls_cert().empty() == tls_key().empty(), "tls_cert", "and '{}' go together, got '{}' and '{}'",
            checks.key("tls_key"), tls_cert(), tls_key())
      // {"rows": [[...]]} nests 3 deep.
      .in("max_json_depth", max_json_depth(), 3, 1000);
}

namespace {

using json = nlohmann::json;

struct HttpError {
  int status;
  std::string message;
};

void reply_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", message}}.dump(), "application/json");
}

// The deepest nesting of arrays and objects in a JSON text, counted outside strings and stopping once
// past `limit`: a linear scan, so that a body of a million '[' is refused before any parser or copy
// recurses into it.
int64_t json_depth_beyond(const std::string& body, int64_t limit) {
  int64_t depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return 0;
}

json parse_request_json(const std::string& body, int64_t max_depth) {
  if (json_depth_beyond(body, max_depth) > 0)
    throw HttpError{400, fmt::format("JSON nested deeper than the server's limit of {} levels (max_json_depth)", max_depth)};
  try {
    return json::parse(body);
  } catch (const json::parse_error& e) {
    throw HttpError{400, fmt::format("malformed JSON: {}", e.what())};
  }
}

// Rows of a JSON body, each flattened to the model's item size.
torch::Tensor rows_from_json(const std::string& body, const std::vector<int64_t>& item_shape, int64_t max_depth) {
  const json j = parse_request_json(body, max_depth);
  // The rows are read where they lie; a single row is read as a list of one.
  const json* rows_field = nullptr;
  bool single_row = false;
  if (j.is_object() && j.contains("rows")) rows_field = &j["rows"];
  else if (j.is_object() && j.contains("row")) rows_field = &j["row"], single_row = true;
  else if (j.is_array()) rows_field = &j;
  else throw HttpError{400, "the JSON body needs \"rows\": [[...], ...] or \"row\": [...]"};
  if (!rows_field->is_array() || rows_field->empty())
    throw HttpError{400, "\"rows\" must be a non-empty array of arrays of numbers"};
  const size_t count = single_row ? 1 : rows_field->size();
  int64_t width = 1;
  for (const int64_t d : item_shape) width *= d;
  std::vector<float> values;
  values.reserve(count * static_cast<size_t>(width));
  for (size_t r = 0; r < count; ++r) {
    const auto& row = single_row ? *rows_field : (*rows_field)[r];
    if (!row.is_array())
      throw HttpError{400, fmt::format("row {} is not an array of numbers", r)};
    if (static_cast<int64_t>(row.size()) != width)
      throw HttpError{400, fmt::format("the model takes items of {} values (shape {}), row {} has {}", width,
                                       shape_string(item_shape), r, row.size())};
    for (size_t c = 0; c < row.size(); ++c) {
      if (!row[c].is_number()) throw HttpError{400, fmt::format("row {} column {} is not a number", r, c)};
      values.push_back(row[c].get<float>());
    }
  }
  std::vector<int64_t> shape{static_cast<int64_t>(count)};
  shape.insert(shape.end(), item_shape.begin(), item_shape.end());
  return torch::tensor(values, torch::kFloat32).reshape(shape);
}

Data data_for(const Detector& detector, torch::Tensor x) {
  const auto* kind = detector.fitted_kind();
  if (kind->traits().rows_are_items) return kind->items_from(std::move(x));
  throw HttpError{400, fmt::format("the server scores models whose items are rows (tabular, image); this model takes "
                                   "{} data", kind->name())};
}

json scored_json(const ScoredItems& s) {
  std::vector<bool> flags(s.flags.begin(), s.flags.end());
  return {{"ids", s.ids}, {"scores", s.scores}, {"flags", flags}, {"threshold", s.threshold}};
}

}  // namespace

struct ScoringServer::Impl {
  ProductionDetector& detector;
  ServerOptions options;
  serve::ConnectionServer server;
  std::thread thread;
  std::mutex thread_mutex;  // wait() may be called from several threads; one joins
  std::atomic<bool> stopping{false};
  // Responses by status code (100..599), for /metrics.
  std::array<std::atomic<int64_t>, 600> responses{};

  std::string response_metrics() const {
    std::string out = "# HELP adx_http_responses_total HTTP responses by status code.\n"
                      "# TYPE adx_http_responses_total counter\n";
    for (size_t code = 100; code < responses.size(); ++code)
      if (const auto n = responses[code].load()) out += fmt::format("adx_http_responses_total{{code=\"{}\"}} {}\n", code, n);
    return out;
  }
  int port = -1;

  Impl(ProductionDetector& d, ServerOptions o)
      : detector(d),
        options(std::move(o)),
        server(serve::ConnectionLimits{static_cast<size_t>(options.threads()),
                                       static_cast<size_t>(options.max_queued_connections()),
                                       std::chrono::seconds(options.idle_timeout_s()),
                                       std::chrono::seconds(options.request_timeout_s()), 1000,
                                       static_cast<size_t>(options.max_idle_connections())},
               options.tls_cert(), options.tls_key()) {}

  // Runs a handler; adx errors from bad input become 400s, anything else a 500, and the server goes on.
  template <class Fn>
  void guarded(httplib::Response& res, Fn&& fn) {
    try {
      fn();
    } catch (const HttpError& e) {
      reply_error(res, e.status, e.message);
    } catch (const NotFittedError& e) {
      reply_error(res, 500, e.what());
    } catch (const Error& e) {
      reply_error(res, 400, e.what());
    } catch (const json::exception& e) {
      reply_error(res, 400, fmt::format("bad JSON field: {}", e.what()));
    } catch (const std::exception& e) {
      reply_error(res, 500, describe_exception(e));
    }
  }

  // The request's rows or image as data for the model in service.
  Data request_data(const httplib::Request& req) {
    const auto snapshot = detector.detector();  // the model stays alive for this request
    const auto& model = *snapshot;
    const auto type = req.get_header_value("Content-Type");
    const bool json_body = type.rfind("application/json", 0) == 0;
    const bool image_body = type.rfind("image/png", 0) == 0 || type.rfind("image/jpeg", 0) == 0;
    if (!json_body && !image_body)
      throw HttpError{415, fmt::format("POST /score takes application/json or image/png / image/jpeg, got '{}'", type)};
    torch::Tensor x;
    if (json_body) {
      x = rows_from_json(req.body, model.item_shape(), options.max_json_depth());
    } else {
      const auto& shape = model.item_shape();
      const auto traits = model.fitted_kind()->traits();
      if (!traits.rows_are_items || !traits.image_rows || shape.size() != 3 || (shape[0] != 1 && shape[0] != 3))
        throw HttpError{415, "this model does not take images; send JSON rows"};
      auto image = decode_image(req.body, "request body", static_cast<int>(shape[0])).unsqueeze(0);
      // Brought to the model's size as the training images were.
      if (image.size(2) != shape[1] || image.size(3) != shape[2])
        image = torch::nn::functional::interpolate(
            image, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{shape[1], shape[2]})
                       .mode(torch::kBilinear).align_corners(false));
      x = image;
    }
    return data_for(model, x);
  }

  void score(const httplib::Request& req, httplib::Response& res) {
    Data data;
    try {
      data = request_data(req);
    } catch (...) {
      detector.count_rejected_call();
      throw;
    }
    const auto scored = detector.score(data);

    if (req.get_param_value("map") == "png") {
      if (!scored.maps.defined() || scored.scores.size() != 1)
        throw HttpError{400, "?map=png needs one image and a detector that makes anomaly maps"};
      // Min-max scaled within the image (brighter = more anomalous); the score itself is in X-Adx-Score.
      const auto map = scored.maps[0].to(torch::kFloat32);
      const double low = map.min().item<double>(), high = map.max().item<double>();
      res.set_content(encode_png(((map - low) / std::max(high - low, 1e-12)).clamp(0, 1)), "image/png");
      res.set_header("X-Adx-Score", fmt::format("{}", scored.scores[0]));
      res.set_header("X-Adx-Flag", scored.flags[0] ? "1" : "0");
      res.set_header("X-Adx-Threshold", fmt::format("{}", scored.threshold));
      return;
    }
    res.set_content(scored_json(scored).dump(), "application/json");
  }

  // The same time whatever the first differing byte, so the token cannot be found byte by byte.
  static bool same_secret(const std::string& given, const std::string& expected) {
    unsigned char difference = given.size() == expected.size() ? 0 : 1;
    for (size_t i = 0; i < given.size(); ++i)
      difference |= static_cast<unsigned char>(given[i] ^ expected[i % std::max<size_t>(1, expected.size())]);
    return difference == 0;
  }

  void feedback(const httplib::Request& req, httplib::Response& res) {
    if (!options.feedback_token().empty() &&
        !same_secret(req.get_header_value("Authorization"), "Bearer " + options.feedback_token())) {
      res.set_header("WWW-Authenticate", "Bearer");
      throw HttpError{401, "POST /feedback needs \"Authorization: Bearer <token>\" with the server's token"};
    }
    if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0)
      throw HttpError{415, "POST /feedback takes application/json"};
    const json j = parse_request_json(req.body, options.max_json_depth());
    const bool listed = j.is_object() && j.contains("items");
    const json& items = listed ? j["items"] : j;
    if (listed && (!items.is_array() || items.empty())) throw HttpError{400, "\"items\" must be a non-empty array"};
    std::vector<std::pair<int64_t, bool>> labels;
    for (size_t k = 0; k < (listed ? items.size() : 1); ++k) {
      const json& item = listed ? items[k] : j;
      if (!item.is_object() || !item.contains("id") || !item["id"].is_number_integer() || !item.contains("is_anomaly") ||
          !item["is_anomaly"].is_boolean())
        throw HttpError{400, "feedback needs {\"id\": <integer>, \"is_anomaly\": <true|false>}"};
      labels.emplace_back(item["id"].get<int64_t>(), item["is_anomaly"].get<bool>());
    }
    // One recalibration for the whole request; a bad id refuses it all.
    const auto last = detector.feedback(labels);
    res.set_content(json{{"threshold", last.threshold}, {"threshold_changed", last.threshold_changed},
                         {"labels", last.labels}, {"rule", last.rule}}
                        .dump(),
                    "application/json");
  }
};

ScoringServer::ScoringServer(ProductionDetector& detector, ServerOptions options)
    : impl_((check_options(options), std::make_unique<Impl>(detector, std::move(options)))) {
  auto& s = impl_->server;
  auto* impl = impl_.get();
  s.set_payload_max_length(static_cast<size_t>(impl_->options.max_body_bytes()));
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second server share
  // the port silently instead of failing.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof(yes));
  });
  // Small replies go out at once: with Nagle's algorithm and delayed ACKs a kept-alive
  // connection waits about 40 ms per request.
  s.set_tcp_nodelay(true);
  s.Post("/score", [impl](const httplib::Request& req, httplib::Response& res) {
    impl->guarded(res, [&] { impl->score(req, res); });
  });
  s.Post("/feedback", [impl](const httplib::Request& req, httplib::Response& res) {
    impl->guarded(res, [&] { impl->feedback(req, res); });
  });
  s.Get("/health", [impl](const httplib::Request&, httplib::Response& res) {
    impl->guarded(res, [&] { res.set_content(impl->detector.health().to_json(), "application/json"); });
  });
  // Probes: alive while the process answers; ready while it takes work (not stopping, and the model in
  // service is not failing every call).
  s.Get("/livez", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(json{{"status", "alive"}}.dump(), "application/json");
  });
  s.Get("/readyz", [impl](const httplib::Request&, httplib::Response& res) {
    impl->guarded(res, [&] {
      const auto status = impl->detector.health().status();
      const bool ready = !impl->stopping && status != "failing";
      res.status = ready ? 200 : 503;
      res.set_content(json{{"status", ready ? "ready" : impl->stopping ? "stopping" : status}}.dump(),
                      "application/json");
    });
  });
  s.Get("/metrics", [impl](const httplib::Request&, httplib::Response& res) {
    impl->guarded(res, [&] {
      res.set_content(impl->detector.health().to_prometheus() + impl->response_metrics(),
                      "text/plain; version=0.0.4; charset=utf-8");
    });
  });
  // Called once per answered request, whatever answered it (a handler, the error handler, a refusal).
  s.set_logger([impl](const httplib::Request&, const httplib::Response& res) {
    if (res.status >= 100 && res.status < 600) ++impl->responses[static_cast<size_t>(res.status)];
  });
  // Only bodies whose size is known before they are read: httplib checks max_body_bytes against
  // Content-Length, but reads chunked bodies and inflates compressed ones without a limit.
  s.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    // Each refusal leaves the body unread, so the connection closes after it.
    const auto refuse = [&](int status, const std::string& message) {
      reply_error(res, status, message);
      res.set_header("Connection", "close");
      serve::close_after_reply();
      return httplib::Server::HandlerResponse::Handled;
    };
    if (serve::answering_overflow()) {
      res.set_header("Retry-After", "1");
      return refuse(503, "the server is busy: every thread is answering and the queue is full; retry shortly");
    }
    const auto encoding = req.get_header_value("Content-Encoding");
    if (!encoding.empty() && encoding != "identity")
      return refuse(415, fmt::format("compressed bodies (Content-Encoding: {}) are not accepted; send the body "
                                     "uncompressed with Content-Length", encoding));
    if (req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos)
      return refuse(411, "chunked bodies are not accepted; send the body with Content-Length");
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Statuses httplib sets itself (404, 413, ...) get a JSON body too.
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = fmt::format("HTTP status {}", res.status);
    if (res.status == 404) message = fmt::format("no endpoint {} {}", req.method, req.path);
    if (res.status == 413) message = "request body larger than the server's limit (max_body_bytes)";
    res.set_content(json{{"error", message}}.dump(), "application/json");
  });
}

ScoringServer::~ScoringServer() {
  stop();
  wait();
}

int ScoringServer::start() {
  auto& s = impl_->server;
  const auto& host = impl_->options.host();
  const int wanted = static_cast<int>(impl_->options.port());
  if (wanted == 0) {
    impl_->port = s.bind_to_any_port(host);
    ADX_CHECK_AS(IoError, impl_->port > 0, "cannot listen on {}: no free port", host);
  } else {
    ADX_CHECK_AS(IoError, s.bind_to_port(host, wanted), "cannot listen on {}:{}: the port is in use or not allowed",
                 host, wanted);
    impl_->port = wanted;
  }
  s.widen_backlog(static_cast<int>(impl_->options.listen_backlog()));
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  // httplib's stop() does nothing until the listening loop runs, so a stop() (a SIGTERM) that came
  // right after start() returned would be lost and wait() would hang: start() returns once it runs.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!s.is_running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ADX_CHECK_AS(IoError, s.is_running(), "the server on {}:{} did not start listening within 30 s", host, impl_->port);
  return impl_->port;
}

void ScoringServer::wait() {
  std::lock_guard<std::mutex> lock(impl_->thread_mutex);
  if (impl_->thread.joinable()) impl_->thread.join();
}

void ScoringServer::stop() {
  impl_->stopping = true;
  impl_->server.stop();
}

int ScoringServer::port() const { return impl_->port; }

}  // namespace adx
