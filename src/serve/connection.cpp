#include "connection.hpp"

#include <adx/core/error.hpp>

#include <openssl/err.h>

#include <algorithm>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace adx::serve {

namespace {

using Clock = std::chrono::steady_clock;

thread_local bool on_overflow_thread = false;
thread_local bool closing_after_reply = false;

// The newest OpenSSL error as text, for messages.
std::string tls_error() {
  const unsigned long code = ERR_get_error();
  if (code == 0) return "no OpenSSL error recorded";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

// Waits until `sock` is ready for `events` (POLLIN / POLLOUT) or `until` passes. A hung-up or failed
// socket counts as ready: the read or write that follows reports it.
bool wait_ready(int sock, short events, Clock::time_point until) {
  for (;;) {
    // Rounded up, so that a wait that ends early has truly reached `until`.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{sock, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, INT_MAX)));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

// Waits for what an OpenSSL call that returned `result` needs; false on a real error or past `until`.
bool wait_for_tls(SSL* ssl, int sock, int result, Clock::time_point until) {
  switch (SSL_get_error(ssl, result)) {
    case SSL_ERROR_WANT_READ: return wait_ready(sock, POLLIN, until);
    case SSL_ERROR_WANT_WRITE: return wait_ready(sock, POLLOUT, until);
    default: return false;
  }
}

// Closes without a reset. Bytes the client sent that were never read (a refused body) make the kernel
// answer close() with a reset, which can destroy the reply before the client reads it; so our side is
// shut first and the client's bytes are drained, up to 1 MiB and for at most `linger`.
void close_gently(int sock, std::chrono::milliseconds linger) {
  ::shutdown(sock, SHUT_WR);
  const auto until = Clock::now() + linger;
  char sink[16384];
  for (size_t drained = 0; drained < (size_t{1} << 20);) {
    const ssize_t n = ::recv(sock, sink, sizeof(sink), 0);
    if (n == 0) break;
    if (n > 0) {
      drained += static_cast<size_t>(n);
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
    if (!wait_ready(sock, POLLIN, until)) break;
  }
  ::close(sock);
}

void address_of(int sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  const int r = peer ? getpeername(sock, reinterpret_cast<sockaddr*>(&address), &length)
                     : getsockname(sock, reinterpret_cast<sockaddr*>(&address), &length);
  char host[NI_MAXHOST], service[NI_MAXSERV];
  if (r != 0 || getnameinfo(reinterpret_cast<sockaddr*>(&address), length, host, sizeof(host), service,
                            sizeof(service), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return;
  ip = host;
  port = std::atoi(service);
}

// One connection's bytes, plain or TLS, on a non-blocking socket. Reads stop at the request's deadline,
// however the bytes trickle in; each write waits at most the idle limit.
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(int sock, SSL* ssl, std::chrono::seconds write_timeout)
      : sock_(sock), ssl_(ssl), write_timeout_(write_timeout), buffer_(16 * 1024) {}

  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }
  /// Whether a read ran past the deadline. Then nothing more is written for the request (httplib would
  /// answer 400 for the headers it could not read); the caller answers 408 and closes.
  bool timed_out() const { return timed_out_; }
  void answer_timeout(const std::string& response) {
    timed_out_ = false;
    for (size_t sent = 0; sent < response.size();) {
      const ssize_t n = write(response.data() + sent, response.size() - sent);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }
  bool has_buffered() const { return offset_ < size_ || (ssl_ != nullptr && SSL_pending(ssl_) > 0); }

  bool is_readable() const override { return has_buffered() || wait_ready(sock_, POLLIN, deadline_); }
  bool is_writable() const override { return wait_ready(sock_, POLLOUT, Clock::now() + write_timeout_); }

  ssize_t read(char* ptr, size_t size) override {
    if (offset_ == size_) {
      const ssize_t n = fill();
      if (n <= 0) return n;
    }
    const size_t n = std::min(size, size_ - offset_);
    std::memcpy(ptr, buffer_.data() + offset_, n);
    offset_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (timed_out_) return -1;
    const auto until = Clock::now() + write_timeout_;
    for (;;) {
      if (ssl_ != nullptr) {
        const int n = SSL_write(ssl_, ptr, static_cast<int>(std::min<size_t>(size, INT_MAX)));
        if (n > 0) return n;
        if (!wait_for_tls(ssl_, sock_, n, until)) return -1;
      } else {
        const ssize_t n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
        if (n >= 0) return n;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
        if (!wait_ready(sock_, POLLOUT, until)) return -1;
      }
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address_of(sock_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address_of(sock_, false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  // Refills the buffer: > 0 bytes read, 0 the peer closed, < 0 an error or the deadline passed.
  ssize_t fill() {
    offset_ = size_ = 0;
    for (;;) {
      if (ssl_ != nullptr) {
        const int n = SSL_read(ssl_, buffer_.data(), static_cast<int>(buffer_.size()));
        if (n > 0) return static_cast<ssize_t>(size_ = static_cast<size_t>(n));
        if (SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN) return 0;
        if (!wait_for_tls(ssl_, sock_, n, deadline_)) return failed_read();
      } else {
        const ssize_t n = ::recv(sock_, buffer_.data(), buffer_.size(), 0);
        if (n >= 0) return static_cast<ssize_t>(size_ = static_cast<size_t>(n));
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
        if (!wait_ready(sock_, POLLIN, deadline_)) return failed_read();
      }
    }
  }

  ssize_t failed_read() {
    timed_out_ = Clock::now() >= deadline_;
    return -1;
  }

  int sock_;
  SSL* ssl_;
  std::chrono::seconds write_timeout_;
  Clock::time_point deadline_ = Clock::now();
  std::vector<char> buffer_;
  size_t offset_ = 0, size_ = 0;
  bool timed_out_ = false;
};

}  // namespace

bool answering_overflow() { return on_overflow_thread; }

void close_after_reply() { closing_after_reply = true; }

// httplib's thread pool with a bound. Connections wait for a free thread in a queue of at most
// `queued`; one that finds the queue full is handed to an overflow thread, which answers its request
// 503 with Retry-After at once, instead of letting the queue grow without limit.
class BoundedPool final : public httplib::TaskQueue {
 public:
  BoundedPool(size_t threads, size_t queued) : queued_(queued), idle_(threads) {
    for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { run(jobs_, false); });
    workers_.emplace_back([this] { run(overflow_, true); });
  }
  ~BoundedPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Jobs not yet taken first go to the idle threads, then wait in the queue.
      (jobs_.size() < idle_ + queued_ ? jobs_ : overflow_).push_back(std::move(fn));
      note_waiting();
    }
    ready_.notify_all();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& t : workers_) t.join();  // queued connections are still answered first
  }

  /// Whether connections wait for a thread (or for the overflow thread's 503) now.
  bool others_waiting() const { return waiting_.load(std::memory_order_relaxed); }

 private:
  void run(std::deque<std::function<void()>>& queue, bool overflow) {
    on_overflow_thread = overflow;
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return stopping_ || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and nothing left
        job = std::move(queue.front());
        queue.pop_front();
        if (!overflow) --idle_;
        note_waiting();
      }
      job();
      if (!overflow) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++idle_;
        note_waiting();
      }
    }
  }

  // Under the lock: jobs beyond the idle threads, or any overflow job, are waiting.
  void note_waiting() { waiting_ = jobs_.size() > idle_ || !overflow_.empty(); }

  size_t queued_, idle_ = 0;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_, overflow_;
  std::vector<std::thread> workers_;
  std::atomic<bool> waiting_{false};
  bool stopping_ = false;
};

ConnectionServer::ConnectionServer(ConnectionLimits limits, const std::string& tls_cert, const std::string& tls_key)
    : limits_(limits) {
  new_task_queue = [this] {
    auto* pool = new BoundedPool(limits_.threads, limits_.queued);
    pool_ = pool;
    return pool;
  };
  ADX_CHECK_AS(OptionError, tls_cert.empty() == tls_key.empty(),
               "TLS needs both a certificate and a key file, got certificate '{}' and key '{}'", tls_cert, tls_key);
  if (tls_cert.empty()) return;
  tls_ = SSL_CTX_new(TLS_server_method());
  ADX_CHECK_AS(IoError, tls_ != nullptr, "cannot set up TLS: {}", tls_error());
  SSL_CTX_set_min_proto_version(tls_, TLS1_2_VERSION);
  const bool loaded = SSL_CTX_use_certificate_chain_file(tls_, tls_cert.c_str()) == 1 &&
                      SSL_CTX_use_PrivateKey_file(tls_, tls_key.c_str(), SSL_FILETYPE_PEM) == 1 &&
                      SSL_CTX_check_private_key(tls_) == 1;
  if (!loaded) {
    const auto why = tls_error();
    SSL_CTX_free(tls_);
    tls_ = nullptr;
    throw IoError(fmt::format("cannot use TLS certificate '{}' with key '{}': {}", tls_cert, tls_key, why));
  }
  // OpenSSL writes to the socket with write(), which raises SIGPIPE when a client has gone; a server
  // must not die of that. Left alone if the program has its own handler.
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) std::signal(SIGPIPE, SIG_IGN);
}

ConnectionServer::~ConnectionServer() {
  if (tls_ != nullptr) SSL_CTX_free(tls_);
}

void ConnectionServer::widen_backlog(int backlog) {
  const int sock = svr_sock_;
  ADX_CHECK_AS(IoError, sock != INVALID_SOCKET && ::listen(sock, backlog) == 0,
               "cannot set the listen backlog to {}: {}", backlog, std::strerror(errno));
}

bool ConnectionServer::await_request(int sock, bool has_buffered, bool after_first, bool overflow) const {
  if (has_buffered) return true;
  // An overflow connection gets a second to speak: the one thread answering them must not be held.
  const auto until = Clock::now() + (overflow ? std::chrono::seconds(1) : limits_.idle);
  for (;;) {
    if (svr_sock_ == INVALID_SOCKET) return false;  // stopping: kept-alive connections close
    const BoundedPool* pool = pool_;
    if (after_first && pool != nullptr && pool->others_waiting()) return false;
    // Short slices, so that a stop or a waiting connection is noticed within 50 ms.
    const auto slice = std::min(until, Clock::now() + std::chrono::milliseconds(50));
    if (wait_ready(sock, POLLIN, slice)) return true;
    if (Clock::now() >= until) return false;
  }
}

bool ConnectionServer::process_and_close_socket(socket_t sock) {
  const bool overflow = answering_overflow();
  closing_after_reply = false;
  ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) | O_NONBLOCK);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(nullptr, SSL_free);
  bool ok = true;
  if (tls_ != nullptr) {
    // The handshake has the same deadline as a request.
    ssl.reset(SSL_new(tls_));
    ok = ssl != nullptr && SSL_set_fd(ssl.get(), sock) == 1;
    const auto until = Clock::now() + (overflow ? std::chrono::seconds(1) : limits_.request);
    for (int r = 0; ok && (r = SSL_accept(ssl.get())) != 1;) ok = wait_for_tls(ssl.get(), sock, r, until);
  }
  if (ok) {
    DeadlineStream stream(sock, ssl.get(), limits_.idle);
    for (size_t served = 0; served < limits_.keep_alive_max; ++served) {
      if (!await_request(sock, stream.has_buffered(), served > 0, overflow)) break;
      stream.set_deadline(Clock::now() + (overflow ? std::chrono::seconds(1) : limits_.request));
      // The answer says "Connection: close" when this is the connection's last request.
      const BoundedPool* pool = pool_;
      const bool last = overflow || served + 1 == limits_.keep_alive_max || svr_sock_ == INVALID_SOCKET ||
                        (pool != nullptr && pool->others_waiting());
      bool closed_by_client = false;
      closing_after_reply = false;
      const bool answered = process_request(stream, last, closed_by_client, nullptr);
      if (stream.timed_out()) {
        const std::string body = fmt::format(
            R"j({{"error": "the request did not arrive within the server's limit of {} s (request_timeout_s)"}})j",
            overflow ? 1 : limits_.request.count());
        stream.answer_timeout(fmt::format("HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                                          "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                                          body.size(), body));
        break;
      }
      if (!answered || closed_by_client || last || closing_after_reply) break;
    }
    if (ssl) SSL_shutdown(ssl.get());  // one close_notify, not waiting for the client's
  }
  // A refused body may still be arriving: wait a little for it, so that the refusal is read. Otherwise
  // only what has already arrived is drained.
  using std::chrono::milliseconds;
  close_gently(sock, closing_after_reply ? (overflow ? milliseconds(200) : milliseconds(1000)) : milliseconds(0));
  return ok;
}

}  // namespace adx::serve
