#pragma once
// An HTTP scoring server for a ProductionDetector (cpp-httplib), as `adx serve` runs it:
//   POST /score     JSON {"rows": [[...], ...]} (or {"row": [...]}), or an image as PNG/JPEG bytes;
//                   returns {"ids", "scores", "flags", "threshold"}; with ?map=png an image detector's
//                   anomaly map comes back as a PNG, its score in the X-Adx-Score header
//   POST /feedback  {"id": 3, "is_anomaly": true} or {"items": [{"id": .., "is_anomaly": ..}, ...]};
//                   with feedback_token set, only with "Authorization: Bearer <token>"
//   GET  /health    the health snapshot as JSON
//   GET  /livez     200 while the process answers; GET /readyz 200 while it takes work, else 503
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
  /// Largest request body in bytes; a larger one is refused with 413 before it is read. Bodies must
  /// come with Content-Length: chunked bodies are refused with 411 and compressed ones
  /// (Content-Encoding) with 415, so no body grows past this limit while it is read or inflated.
  ADX_ARG(int64_t, max_body_bytes) = int64_t{16} << 20;
  /// Deepest nesting of arrays and objects a JSON body may have ({"rows": [[...]]} nests 3 deep); a
  /// deeper one is refused with 400 before it is parsed.
  ADX_ARG(int64_t, max_json_depth) = 16;
  /// Threads answering requests. A connection takes one only once its request has arrived (see
  /// max_idle_connections), for as long as it is read, scored and answered.
  ADX_ARG(int64_t, threads) = 16;
  /// Connections that may wait for a free thread; one more is answered 503 with Retry-After at once.
  ADX_ARG(int64_t, max_queued_connections) = 64;
  /// Connections held while they wait for a request (kept alive between requests, or still sending
  /// one's head and first 16 KiB of body), by one polling thread rather than a thread each; a
  /// connection that would wait beyond this count is closed. Plain HTTP only: a TLS connection keeps
  /// its thread while it waits.
  ADX_ARG(int64_t, max_idle_connections) = 1000;
  /// Seconds a connection may stay silent before a request (idle between kept-alive requests) or wait
  /// on one write, before it is closed.
  ADX_ARG(int64_t, idle_timeout_s) = 5;
  /// Seconds a client has to send one whole request, headers and body, from its first byte; a slower
  /// one is closed. This bounds what a client that trickles its bytes can hold a thread for.
  ADX_ARG(int64_t, request_timeout_s) = 30;
  /// Connections the kernel may hold before they are accepted (the listen backlog; the kernel caps it
  /// at net.core.somaxconn).
  ADX_ARG(int64_t, listen_backlog) = 1024;
  /// PEM files of the server's certificate chain and private key: with both set the server speaks
  /// HTTPS only (OpenSSL, TLS 1.2 or later). An unreadable file or a key that does not match is an
  /// IoError at construction.
  ADX_ARG(std::string, tls_cert) = "";
  ADX_ARG(std::string, tls_key) = "";
  /// When set, POST /feedback (which moves the threshold) needs "Authorization: Bearer <token>"; others
  /// get 401. Scoring and the probes stay open. Bound beyond loopback, set it (adx serve --token-file).
  ADX_ARG(std::string, feedback_token) = "";

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
  /// Blocks until the server has stopped (stop() called from another thread or a signal-waiting
  /// thread) and its requests in flight are answered. Safe to call from several threads.
  void wait();
  /// Stops accepting connections and returns at once; wait() returns once the requests in flight are
  /// answered.
  void stop();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace adx
