#include "connection.hpp"

#include <adx/core/error.hpp>

#include <openssl/err.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace adx::serve {

namespace {

using Clock = std::chrono::steady_clock;

thread_local bool on_overflow_thread = false;
thread_local bool released_early = false;  // this thread's job handed its connection to the waiting room
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

// The whole 408 reply for a request that did not arrive within `seconds`; the connection then closes.
std::string timeout_reply(int64_t seconds) {
  const std::string body = fmt::format(
      R"j({{"error": "the request did not arrive within the server's limit of {} s (request_timeout_s)"}})j", seconds);
  return fmt::format("HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
                     "Connection: close\r\n\r\n{}",
                     body.size(), body);
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
class DeadlineStream final : public DeadlineStreamBase {
 public:
  DeadlineStream(int sock, SSL* ssl, std::chrono::seconds write_timeout)
      : sock_(sock), ssl_(ssl), write_timeout_(write_timeout), buffer_(16 * 1024) {}

  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }
  /// The bytes read and not yet consumed (a pipelined request's start), leaving none.
  std::string take_buffered() {
    std::string rest(buffer_.data() + offset_, size_ - offset_);
    offset_ = size_ = 0;
    return rest;
  }
  /// Reads `bytes` (read from the socket elsewhere) before anything else; the buffer must be empty.
  void preload(const std::string& bytes) {
    if (buffer_.size() < bytes.size()) buffer_.resize(bytes.size());
    std::memcpy(buffer_.data(), bytes.data(), bytes.size());
    offset_ = 0;
    size_ = bytes.size();
  }
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

namespace {

// How much of a request the waiting room reads before it hands the connection to a thread: the whole
// head (up to kHeadBytes) and the first kBodyBytes of its body (or all of a smaller one).
constexpr size_t kHeadBytes = 16 * 1024, kBodyBytes = 16 * 1024;

enum class Arrival { Complete, Partial, Closed };

// Whether `received`, the start of a request, is enough to hand to a thread.
bool request_arrived(std::string_view received) {
  const auto head_end = received.find("\r\n\r\n");
  // A head too long to see whole goes to the parser, which refuses it.
  if (head_end == std::string_view::npos || head_end > kHeadBytes) return received.size() >= kHeadBytes;
  size_t content_length = 0;
  for (size_t line = received.find("\r\n") + 2; line < head_end;) {
    const size_t end = received.find("\r\n", line), colon = received.find(':', line);
    if (colon < end) {
      std::string name(received.substr(line, colon - line));
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      // A client that expects 100-continue, or sends chunks (refused at once), sends no body yet.
      if (name == "expect" || name == "transfer-encoding") return true;
      if (name == "content-length") content_length = std::strtoull(received.data() + colon + 1, nullptr, 10);
    }
    line = end + 2;
  }
  return received.size() >= head_end + 4 + std::min(content_length, kBodyBytes);
}

// Reads what `sock` has received, without waiting, onto `received` (up to what request_arrived wants).
// The bytes are read, not peeked, so that the kernel acknowledges them at once: a client that writes a
// request's head and body separately, with Nagle's algorithm on, sends the body only then.
Arrival receive_available(int sock, std::string& received) {
  char buffer[8192];
  while (!request_arrived(received)) {
    const size_t room = kHeadBytes + kBodyBytes - std::min(received.size(), kHeadBytes + kBodyBytes);
    const ssize_t n = ::recv(sock, buffer, std::min(sizeof(buffer), std::max<size_t>(room, 1)), MSG_DONTWAIT);
    if (n > 0) {
      received.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      // Acknowledged now rather than after the delayed-ACK timer (up to 40 ms): the client may hold the
      // rest of its request until then.
      int on = 1;
      ::setsockopt(sock, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof(on));
      return Arrival::Partial;
    }
    return Arrival::Closed;  // the client closed or failed before its request was whole
  }
  return Arrival::Complete;
}

}  // namespace

// Connections waiting for their next request, held by one polling thread rather than by a worker each:
// a kept-alive client between requests, or one that trickles its request, costs a file descriptor, not
// a thread. A connection goes (back) to the workers once its request has arrived (see request_arrived).
// One silent past the idle limit is closed; one whose request has not all arrived within the request
// deadline of its first byte is answered 408 and closed.
class WaitingRoom {
 public:
  using Resume = std::function<void(std::string received)>;
  WaitingRoom(size_t capacity, const ConnectionLimits& limits, std::function<void(std::function<void()>)> dispatch)
      : capacity_(capacity), limits_(limits), dispatch_(std::move(dispatch)) {
    ADX_CHECK_AS(IoError, ::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) == 0, "cannot make the server's wake-up pipe: {}",
                 std::strerror(errno));
    thread_ = std::thread([this] { run(); });
  }
  ~WaitingRoom() {
    stop();
    ::close(wake_[0]);
    ::close(wake_[1]);
  }
  WaitingRoom(const WaitingRoom&) = delete;
  WaitingRoom& operator=(const WaitingRoom&) = delete;

  /// Holds `sock`, of which `received` has been read so far, until its request has arrived; then
  /// dispatches `resume` with all the bytes read to the workers. False when the room is full or stopped:
  /// the caller closes the connection.
  bool hold(int sock, std::string received, Resume resume) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_ || held_ >= capacity_) return false;
      ++held_;
      const bool has_bytes = !received.empty();
      const auto now = Clock::now();
      incoming_.push_back(Entry{sock, std::move(resume), std::move(received), now, now, has_bytes});
    }
    wake();
    return true;
  }

  /// Closes every connection held, and stops.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    wake();
    thread_.join();
  }

 private:
  struct Entry {
    int sock;
    Resume resume;
    std::string received;
    Clock::time_point held_since, first_byte;
    bool has_bytes;
  };

  void wake() { [[maybe_unused]] const auto n = ::write(wake_[1], "x", 1); }

  Clock::time_point deadline(const Entry& e) const {
    return e.has_bytes ? e.first_byte + limits_.request : e.held_since + limits_.idle;
  }

  void release(size_t i, bool answer_timeout) {
    if (answer_timeout) {
      const auto reply = timeout_reply(limits_.request.count());
      [[maybe_unused]] const auto sent = ::send(entries_[i].sock, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    close_gently(entries_[i].sock, std::chrono::milliseconds(0));
    forget(i);
  }

  void forget(size_t i) {
    entries_[i] = std::move(entries_.back());
    entries_.pop_back();
    std::lock_guard<std::mutex> lock(mutex_);
    --held_;
  }

  void run() {
    std::vector<pollfd> polled;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& e : incoming_) entries_.push_back(std::move(e));
        incoming_.clear();
        if (stopping_) break;
      }
      auto next = Clock::now() + std::chrono::seconds(1);
      polled.assign(1, pollfd{wake_[0], POLLIN, 0});
      for (const auto& e : entries_) {
        polled.push_back(pollfd{e.sock, POLLIN, 0});
        next = std::min(next, deadline(e));
      }
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now()).count();
      if (::poll(polled.data(), polled.size(), static_cast<int>(std::max<int64_t>(wait, 0))) < 0 && errno != EINTR)
        continue;
      if (polled[0].revents != 0) {
        char sink[64];
        while (::read(wake_[0], sink, sizeof(sink)) > 0) {
        }
      }
      // Entries were only appended since `polled` was built, so index i + 1 is entry i. Walk backwards:
      // forget() moves the last entry into the freed place.
      const auto now = Clock::now();
      for (size_t i = std::min(entries_.size(), polled.size() - 1); i-- > 0;) {
        if (polled[i + 1].revents != 0) {
          auto& e = entries_[i];
          const auto arrival = receive_available(e.sock, e.received);
          if (arrival == Arrival::Complete) {
            dispatch_([resume = std::move(e.resume), received = std::move(e.received)]() mutable {
              resume(std::move(received));
            });
            forget(i);
            continue;
          }
          if (arrival == Arrival::Closed) {
            release(i, false);
            continue;
          }
          if (!e.has_bytes && !e.received.empty()) {
            e.has_bytes = true;
            e.first_byte = now;
          }
        }
        if (now >= deadline(entries_[i])) release(i, entries_[i].has_bytes);
      }
    }
    while (!entries_.empty()) release(entries_.size() - 1, false);
  }

  size_t capacity_;
  ConnectionLimits limits_;
  std::function<void(std::function<void()>)> dispatch_;
  int wake_[2] = {-1, -1};
  std::mutex mutex_;
  std::vector<Entry> incoming_, entries_;
  size_t held_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

// httplib's thread pool with a bound. Connections wait for a free thread in a queue of at most
// `queued`; one that finds the queue full is handed to an overflow thread, which answers its request
// 503 with Retry-After at once, instead of letting the queue grow without limit.
class BoundedPool final : public httplib::TaskQueue {
 public:
  BoundedPool(const ConnectionLimits& limits)
      : queued_(limits.queued), idle_(limits.threads),
        room_(limits.held, limits, [this](std::function<void()> job) { enqueue(std::move(job)); }) {
    for (size_t i = 0; i < limits.threads; ++i) workers_.emplace_back([this] { run(jobs_, false); });
    workers_.emplace_back([this] { run(overflow_, true); });
  }

  /// See WaitingRoom::hold. Called by a worker whose job is about to end: the worker counts as idle
  /// from now, so that the connection, should its request arrive at once, finds a thread rather than
  /// the overflow's 503.
  bool hold(int sock, std::string received, WaitingRoom::Resume resume) {
    const bool worker = !on_overflow_thread;
    if (worker) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++idle_;
      note_waiting();
    }
    if (room_.hold(sock, std::move(received), std::move(resume))) {
      released_early = worker;
      return true;
    }
    if (worker) {
      std::lock_guard<std::mutex> lock(mutex_);
      --idle_;
      note_waiting();
    }
    return false;
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
    room_.stop();  // connections waiting for a request close; requests taken by a thread are answered
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
        if (!released_early) ++idle_;
        released_early = false;
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
  WaitingRoom room_;  // last: it dispatches into the queues above
};

ConnectionServer::ConnectionServer(ConnectionLimits limits, const std::string& tls_cert, const std::string& tls_key)
    : limits_(limits) {
  new_task_queue = [this] {
    auto* pool = new BoundedPool(limits_);
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
  ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) | O_NONBLOCK);
  // Replies go out at once: httplib writes a reply's head and body separately, and with Nagle's
  // algorithm the body would wait for the client's delayed ACK of the head (40 ms).
  int on = 1;
  ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  if (tls_ == nullptr) {
    serve_plain(sock, 0, {});
    return true;
  }
  // TLS: the waiting room cannot see a request's head in encrypted bytes, so a TLS connection keeps its
  // thread while it waits, under the same limits.
  const bool overflow = answering_overflow();
  closing_after_reply = false;
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(tls_), SSL_free);
  // The handshake has the same deadline as a request.
  bool ok = ssl != nullptr && SSL_set_fd(ssl.get(), sock) == 1;
  const auto until = Clock::now() + (overflow ? std::chrono::seconds(1) : limits_.request);
  for (int r = 0; ok && (r = SSL_accept(ssl.get())) != 1;) ok = wait_for_tls(ssl.get(), sock, r, until);
  if (ok) {
    DeadlineStream stream(sock, ssl.get(), limits_.idle);
    for (size_t served = 0; served < limits_.keep_alive_max; ++served) {
      if (!await_request(sock, stream.has_buffered(), served > 0, overflow)) break;
      const BoundedPool* pool = pool_;
      const bool last = overflow || served + 1 == limits_.keep_alive_max || svr_sock_ == INVALID_SOCKET ||
                        (pool != nullptr && pool->others_waiting());
      if (!answer_one(stream, last, overflow)) break;
    }
    SSL_shutdown(ssl.get());  // one close_notify, not waiting for the client's
  }
  finish(sock, overflow);
  return ok;
}

void ConnectionServer::serve_plain(int sock, size_t served, std::string received) {
  const bool overflow = answering_overflow();
  closing_after_reply = false;
  DeadlineStream stream(sock, nullptr, limits_.idle);
  for (; served < limits_.keep_alive_max; ++served) {
    received += stream.take_buffered();
    // A client that sends its next request right after the reply keeps this thread, unless others wait
    // for one: a short wait costs less than a trip through the waiting room.
    const BoundedPool* busy = pool_;
    if (served > 0 && received.empty() && !overflow && busy != nullptr && !busy->others_waiting())
      wait_ready(sock, POLLIN, Clock::now() + std::chrono::milliseconds(2));
    const auto arrival = receive_available(sock, received);
    if (arrival == Arrival::Closed) break;
    // Until its request has arrived, a connection waits in the waiting room, not on this thread. An
    // overflow connection too: it is answered 503 only once its request is there to answer.
    if (arrival == Arrival::Partial) {
      BoundedPool* pool = pool_;
      if (svr_sock_ != INVALID_SOCKET && pool != nullptr &&
          pool->hold(sock, std::move(received),
                     [this, sock, served](std::string bytes) { serve_plain(sock, served, std::move(bytes)); }))
        return;  // the room has it now
      break;     // stopping, or the room is full
    }
    stream.preload(received);
    received.clear();
    const bool last = overflow || served + 1 == limits_.keep_alive_max || svr_sock_ == INVALID_SOCKET;
    if (!answer_one(stream, last, overflow)) break;
  }
  finish(sock, overflow);
}

bool ConnectionServer::answer_one(DeadlineStreamBase& base, bool last, bool overflow) {
  auto& stream = static_cast<DeadlineStream&>(base);
  stream.set_deadline(Clock::now() + (overflow ? std::chrono::seconds(1) : limits_.request));
  bool closed_by_client = false;
  closing_after_reply = false;
  const bool answered = process_request(stream, last, closed_by_client, nullptr);
  if (stream.timed_out()) {
    stream.answer_timeout(timeout_reply(overflow ? 1 : limits_.request.count()));
    return false;
  }
  return answered && !closed_by_client && !last && !closing_after_reply;
}

void ConnectionServer::finish(int sock, bool overflow) {
  // A refused body may still be arriving: wait a little for it, so that the refusal is read. Otherwise
  // only what has already arrived is drained.
  using std::chrono::milliseconds;
  close_gently(sock, closing_after_reply ? (overflow ? milliseconds(200) : milliseconds(1000)) : milliseconds(0));
}

}  // namespace adx::serve
