#pragma once
// How the scoring server holds its connections, under httplib's request parsing and routing:
//   - a bounded pool of threads, with a bounded queue; a connection that finds both full is answered
//     503 by an overflow thread;
//   - a deadline for all the bytes of each request (httplib's read timeout restarts with every byte,
//     so a client sending a byte a second would hold a thread for ever);
//   - connections that wait for a request (kept alive between requests, or still sending one) held
//     by one polling thread, not a thread each; a slow or idle client costs a file descriptor;
//   - a listen backlog of our choosing (Debian's httplib is built with 5);
//   - optional TLS through OpenSSL, under the same deadlines.
// Internal to the server (src/serve); it includes httplib.h.
#include <httplib.h>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>

namespace adx::serve {

struct ConnectionLimits {
  size_t threads = 16;  ///< threads answering connections
  size_t queued = 64;   ///< connections that may wait for a thread
  std::chrono::seconds idle{5};      ///< silence allowed before a request, and per write
  std::chrono::seconds request{30};  ///< time to receive one whole request from its first byte
  size_t keep_alive_max = 1000;      ///< requests served on one connection
  size_t held = 1000;                ///< connections held without a thread while they wait for a request
};

/// The stream a connection is read and written through (defined in connection.cpp).
class DeadlineStreamBase : public httplib::Stream {};

/// True on the thread that answers the connections the pool had no room for: each gets a 503.
bool answering_overflow();

/// Called from a handler: the connection closes once this request is answered (say so to the client
/// with "Connection: close"). For refusals that leave the body unread, whose bytes would otherwise be
/// read as the next request.
void close_after_reply();

class BoundedPool;

class ConnectionServer final : public httplib::Server {
 public:
  /// With `tls_cert` and `tls_key` (PEM files) both set, connections speak TLS only; a file that cannot
  /// be read, or a key that does not match the certificate, is an IoError.
  ConnectionServer(ConnectionLimits limits, const std::string& tls_cert, const std::string& tls_key);
  ~ConnectionServer() override;
  ConnectionServer(const ConnectionServer&) = delete;
  ConnectionServer& operator=(const ConnectionServer&) = delete;

  /// After binding: lets the kernel hold `backlog` connections waiting to be accepted (capped by
  /// net.core.somaxconn). Listening again on a listening socket only changes its backlog.
  void widen_backlog(int backlog);

 private:
  bool process_and_close_socket(socket_t sock) override;
  // Waits for the first byte of a connection's next request; false when the connection should close
  // instead: silent past the idle limit, the server stopping, or (after a first request) other
  // connections waiting for a thread.
  bool await_request(int sock, bool has_buffered, bool after_first, bool overflow) const;
  // Serves a plain connection from its request number `served` until it must wait for the next
  // request (then the waiting room holds it) or closes.
  // `received`: the start of the next request, already read.
  void serve_plain(int sock, size_t served, std::string received);
  // Answers one request on `stream`; whether the connection stays open for another.
  bool answer_one(DeadlineStreamBase& stream, bool last, bool overflow);
  // Closes the connection once its last reply is written.
  void finish(int sock, bool overflow);

  ConnectionLimits limits_;
  SSL_CTX* tls_ = nullptr;
  std::atomic<BoundedPool*> pool_{nullptr};
};

}  // namespace adx::serve
