#pragma once
// An HTTP scoring server for a ProductionDetector (cpp-httplib), as `adx serve` runs it:
//   POST /score     JSON {"rows": [[...], ...]} (or {"row": [...]}), or an image as PNG/JPEG bytes;
//                   returns {"ids", "scores", "flags", "threshold"}; with ?map=png an image detector's
//                   anomaly map comes back as a PNG, its score in the X-Adx-Score header
//   POST /feedback  {"id": 3, "is_anomaly": true} or {"items": [{"id": .., "is_anomaly": ..}, ...]}
//   GET  /health    the health snapshot as JSON
//   GET  /metrics   Prometheus text
// Bad requests get a 4xx status and a JSON body {"error": "..."}; the server keeps answering.
#include <adx/core/options.hpp>

#include <memory>
#include <string>

namespace adx {

class ProductionDetector;

struct ServerOptions {
  ADX_OPTIONS_STRUCT;
  /// Address to listen on; 127.0.0.1 keeps the server off the network.
  ADX_ARG(std::string, host) = "127.0.0.1";
  /// Port; 0 picks a free one (see ScoringServer::port()).
  ADX_ARG(int64_t, port) = 8080;
  /// Largest request body in bytes; a larger one is refused with 413.
  ADX_ARG(int64_t, max_body_bytes) = int64_t{16} << 20;
  /// Threads answering requests. A client that keeps its connection open holds one thread while it
  /// does, so give at least as many threads as concurrent clients.
  ADX_ARG(int64_t, threads) = 16;

 public:
  void check(const std::string& prefix) const;
};

class ScoringServer {
 public:
  /// `detector` must outlive the server.
  ScoringServer(ProductionDetector& detector, ServerOptions options = ServerOptions());
  ~ScoringServer();
  ScoringServer(const ScoringServer&) = delete;
  ScoringServer& operator=(const ScoringServer&) = delete;

  /// Binds and answers in background threads; returns the port. A port in use is an IoError.
  int start();
  /// Blocks until stop() is called (from another thread or a signal handler's thread).
  void wait();
  void stop();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace adx
