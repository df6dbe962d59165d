// A load-and-fault run of `adx serve` on 127.0.0.1, bounded in time. Good clients score rows while
// hostile ones send what a deployment must survive: 2 MB of nested '[', chunked and gzip-encoded
// bombs, malformed JSON, NaN, a wrong width, values that overflow the model, clients that trickle
// their bytes, idle connections, and a burst of many connections at once. Then SIGTERM.
// It reports requests/s, p50 and p99 of the good requests, what every kind of request got, the
// server's peak memory and its shutdown time, and exits 1 when a check fails:
//   - the server never dies;
//   - every good request is answered 200, or 503 (busy);
//   - no hostile request gets a 5xx other than 503;
//   - p99 of the good requests answered 200 is at most --max-p99-ms;
//   - the server's peak resident memory is at most --max-rss-mb;
//   - SIGTERM ends it with status 0 within --max-shutdown-s, and its --state file is written.
//   server_faults [--adx PATH] [--seconds 20] [--good-clients 8] [--slow-clients 20] [--idle 40] [--burst 500]
#include <adx/base.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The peak resident memory of process `pid` in MiB (VmHWM), or -1.
double peak_rss_mb(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

int connect_to(int port) {
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (sock < 0 || ::connect(sock, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    if (sock >= 0) ::close(sock);
    return -1;
  }
  return sock;
}

// The status code at the start of what `sock` has received so far, reading until `until`; 0 if the
// connection ended or the time passed with no status line.
int read_status(int sock, Clock::time_point until, std::string& received) {
  char buffer[4096];
  while (received.find("\r\n") == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    pollfd p{sock, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return 0;
    const auto n = ::recv(sock, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n <= 0) return 0;
    received.append(buffer, static_cast<size_t>(n));
  }
  return received.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(received.c_str() + 9) : 0;
}

// Sends `head`, then `body_bytes` of `filler` in pieces, stopping as soon as a reply arrives (a server
// that refuses a body answers before reading it); returns the reply's status, 0 for none.
int send_and_read(int port, const std::string& head, size_t body_bytes, char filler = 'x') {
  const int sock = connect_to(port);
  if (sock < 0) return 0;
  std::string received;
  int status = 0;
  const auto until = Clock::now() + std::chrono::seconds(10);
  if (::send(sock, head.data(), head.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(head.size())) {
    const std::string piece(64 * 1024, filler);
    for (size_t sent = 0; sent < body_bytes && status == 0;) {
      const size_t n = std::min(piece.size(), body_bytes - sent);
      if (::send(sock, piece.data(), n, MSG_NOSIGNAL) <= 0) break;
      sent += n;
      status = read_status(sock, Clock::now(), received);  // a reply already there?
    }
    if (status == 0) status = read_status(sock, until, received);
  }
  ::close(sock);
  return status;
}

std::string post(const std::string& body, const std::string& extra_headers = "") {
  return fmt::format("POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{}"
                     "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                     extra_headers, body.size(), body);
}

struct Tally {
  std::mutex mutex;
  std::map<std::string, std::map<int, int64_t>> statuses;  // kind of request -> status -> count
  std::vector<double> good_ms;                             // latency of good requests answered 200
  void add(const std::string& kind, int status) {
    std::lock_guard<std::mutex> lock(mutex);
    ++statuses[kind][status];
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"load-and-fault run of adx serve on 127.0.0.1"};
  std::string adx_path = ADX_CLI;
  double seconds = 20, max_p99_ms = 1000, max_rss_mb = 1024, max_shutdown_s = 15;
  int good_clients = 8, slow_clients = 20, idle_connections = 40, burst = 500, threads = 16, request_timeout = 10;
  app.add_option("--adx", adx_path, "the adx command to serve with")->capture_default_str();
  app.add_option("--seconds", seconds, "length of the run")->capture_default_str();
  app.add_option("--good-clients", good_clients, "clients scoring one good row per request")->capture_default_str();
  app.add_option("--slow-clients", slow_clients, "clients sending a header byte a second")->capture_default_str();
  app.add_option("--idle", idle_connections, "connections that send nothing")->capture_default_str();
  app.add_option("--burst", burst, "connections opened at once, mid-run, each with one good request")
      ->capture_default_str();
  app.add_option("--threads", threads, "server threads")->capture_default_str();
  app.add_option("--request-timeout", request_timeout, "server's request deadline, s")->capture_default_str();
  app.add_option("--max-p99-ms", max_p99_ms, "check: p99 of good requests answered 200")->capture_default_str();
  app.add_option("--max-rss-mb", max_rss_mb, "check: the server's peak resident memory")->capture_default_str();
  app.add_option("--max-shutdown-s", max_shutdown_s, "check: SIGTERM to exit")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // The burst and the server's connections need file descriptors.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("adx_server_faults_{}", ::getpid());
  std::filesystem::create_directories(dir);
  const auto model = (dir / "model.adx").string(), state = (dir / "state.adx").string(),
             log = (dir / "serve.log").string();
  {
    torch::manual_seed(0);
    const auto basis = torch::randn({3, 16});
    auto detector = adx::make_detector("autoencoder", {{"train.epochs", "5"}, {"runtime.threads", "1"}});
    detector->fit(adx::Data::tabular(torch::randn({2000, 3}).matmul(basis) + 0.05 * torch::randn({2000, 16})));
    detector->save(model);
  }

  const std::vector<std::string> words{adx_path, "serve", model, "--port", "0", "--state", state, "--threads",
                                       std::to_string(threads), "--request-timeout", std::to_string(request_timeout),
                                       "--idle-timeout", "2", "--grace", "10"};
  std::vector<char*> server_argv;
  for (const auto& w : words) server_argv.push_back(const_cast<char*>(w.c_str()));
  server_argv.push_back(nullptr);
  const pid_t server = fork();
  if (server == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(adx_path.c_str(), server_argv.data());
    _exit(127);
  }
  int port = 0;
  for (const auto until = Clock::now() + std::chrono::seconds(60); port == 0 && Clock::now() < until;) {
    const auto text = read_text(log);
    if (const auto at = text.find("://127.0.0.1:"); at != std::string::npos) port = std::stoi(text.substr(at + 13));
    else std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (port == 0) {
    std::cerr << "server did not start:\n" << read_text(log);
    kill(server, SIGKILL);
    return 1;
  }

  std::string good_row = "[";
  for (int j = 0; j < 16; ++j) good_row += fmt::format("{}{:.3f}", j ? "," : "", 0.1 * ((j * 7) % 11) - 0.5);
  good_row += "]";
  const std::string good_body = "{\"rows\": [" + good_row + "]}";

  Tally tally;
  std::atomic<bool> stop{false};
  std::atomic<bool> server_died{false};
  const auto start = Clock::now();
  std::vector<std::thread> workers;

  for (int c = 0; c < good_clients; ++c)
    workers.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_read_timeout(30, 0);
      while (!stop) {
        const auto t0 = Clock::now();
        const auto res = client.Post("/score", good_body, "application/json");
        const double ms = seconds_since(t0) * 1000;
        const int status = res ? res->status : 0;
        tally.add("good", status);
        if (status == 200) {
          std::lock_guard<std::mutex> lock(tally.mutex);
          tally.good_ms.push_back(ms);
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Retry-After, shortened
        }
      }
    });

  // One thread cycles through the hostile bodies.
  workers.emplace_back([&] {
    std::string wide = "{\"rows\": [[";
    for (int j = 0; j < 17; ++j) wide += j ? ",1" : "1";
    wide += "]]}";
    std::string nan_row = "{\"rows\": [[NaN";
    for (int j = 1; j < 16; ++j) nan_row += ",0";
    nan_row += "]]}";
    std::string huge = "{\"rows\": [[";
    for (int j = 0; j < 16; ++j) huge += j ? ",3e38" : "3e38";
    huge += "]]}";
    const std::vector<std::pair<std::string, std::string>> bodies{
        {"deep JSON (2 MB of '[')", post(std::string(2000000, '['))},
        {"malformed JSON", post("{\"rows\": [[1, 2,")},
        {"NaN in a row", post(nan_row)},
        {"wrong width (17 of 16)", post(wide)},
        {"overflowing values (3e38)", post(huge)},
    };
    while (!stop) {
      for (const auto& [kind, request] : bodies) tally.add(kind, send_and_read(port, request, 0));
      tally.add("chunked body (up to 50 MB)",
                send_and_read(port,
                              "POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n",
                              50u << 20));
      tally.add("gzip body (200 KB claimed)",
                send_and_read(port,
                              "POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Encoding: gzip\r\nContent-Length: 204800\r\n\r\n",
                              204800, '\0'));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  std::mutex cut_mutex;
  std::vector<double> cut_after_s;
  for (int c = 0; c < slow_clients; ++c)
    workers.emplace_back([&] {
      while (!stop) {
        const int sock = connect_to(port);
        if (sock < 0) {
          tally.add("slow client (a byte a second)", 0);
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          continue;
        }
        const auto opened = Clock::now();
        const std::string head = "POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\n";
        ::send(sock, head.data(), head.size(), MSG_NOSIGNAL);
        std::string received;
        int status = 0;
        while (!stop && status == 0) {
          if (::send(sock, "X", 1, MSG_NOSIGNAL) <= 0) break;
          status = read_status(sock, Clock::now() + std::chrono::seconds(1), received);
          if (status == 0 && !received.empty()) break;
          pollfd p{sock, POLLIN, 0};
          if (status == 0 && ::poll(&p, 1, 0) > 0 && ::recv(sock, nullptr, 0, MSG_PEEK | MSG_DONTWAIT) == 0) break;
        }
        if (!stop) {
          tally.add("slow client (a byte a second)", status);
          std::lock_guard<std::mutex> lock(cut_mutex);
          cut_after_s.push_back(seconds_since(opened));
        }
        ::close(sock);
      }
    });

  workers.emplace_back([&] {
    std::vector<int> idle;
    while (!stop) {
      for (auto& s : idle) ::close(s);
      idle.clear();
      for (int i = 0; i < idle_connections; ++i) idle.push_back(connect_to(port));
      for (int i = 0; i < 20 && !stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    for (auto& s : idle) ::close(s);
  });

  double burst_seconds = 0;
  workers.emplace_back([&] {
    while (!stop && seconds_since(start) < seconds / 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (stop || burst <= 0) return;
    const auto t0 = Clock::now();
    std::vector<int> socks;
    const auto request = post(good_body);
    for (int i = 0; i < burst; ++i) {
      const int sock = connect_to(port);
      if (sock >= 0) ::send(sock, request.data(), request.size(), MSG_NOSIGNAL);
      socks.push_back(sock);
    }
    const auto until = Clock::now() + std::chrono::seconds(60);
    for (const int sock : socks) {
      std::string received;
      tally.add("burst (good requests at once)", sock < 0 ? 0 : read_status(sock, until, received));
      if (sock >= 0) ::close(sock);
    }
    burst_seconds = seconds_since(t0);
  });

  while (seconds_since(start) < seconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int status = 0;
    if (waitpid(server, &status, WNOHANG) == server) {
      server_died = true;
      break;
    }
  }
  stop = true;
  for (auto& w : workers) w.join();
  const double run_seconds = seconds_since(start);
  const double rss = peak_rss_mb(server);

  double shutdown_s = -1;
  int exit_status = -1;
  if (!server_died) {
    const auto signalled = Clock::now();
    kill(server, SIGTERM);
    int status = 0;
    pid_t done = 0;
    while ((done = waitpid(server, &status, WNOHANG)) == 0 && seconds_since(signalled) < 60)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    shutdown_s = seconds_since(signalled);
    if (done == server && WIFEXITED(status)) exit_status = WEXITSTATUS(status);
    if (done != server) kill(server, SIGKILL), waitpid(server, &status, 0);
  }
  bool state_saved = false;
  try {
    state_saved = std::filesystem::exists(state) && adx::load(state)->calibrated();
  } catch (const std::exception&) {
  }

  // Report.
  auto& good = tally.statuses["good"];
  int64_t good_total = 0, good_other = 0;
  for (const auto& [status, n] : good) {
    good_total += n;
    if (status != 200 && status != 503) good_other += n;
  }
  std::sort(tally.good_ms.begin(), tally.good_ms.end());
  const double p50 = tally.good_ms.empty() ? 0 : adx::quantile(tally.good_ms, 0.5);
  const double p99 = tally.good_ms.empty() ? 0 : adx::quantile(tally.good_ms, 0.99);
  int64_t bad_5xx = 0;
  std::cout << fmt::format("adx serve under a hostile mix: {:.1f} s on 127.0.0.1, {} server threads, {} hardware "
                           "threads\n\n| requests | answered (status: count; 0 = no reply) |\n|---|---|\n",
                           run_seconds, threads, std::thread::hardware_concurrency());
  for (const auto& [kind, statuses] : tally.statuses) {
    std::string cells;
    for (const auto& [status, n] : statuses) {
      cells += fmt::format("{}{}: {}", cells.empty() ? "" : ", ", status, n);
      if (kind != "good" && status >= 500 && status != 503) bad_5xx += n;
    }
    std::cout << fmt::format("| {} | {} |\n", kind, cells);
  }
  std::sort(cut_after_s.begin(), cut_after_s.end());
  std::cout << fmt::format(
      "\ngood requests: {} in all, {:.0f}/s answered 200; latency of those ms: p50 {:.2f}, p99 {:.2f}\n"
      "slow clients cut after {:.1f} s (median; the request deadline is {} s)\n"
      "burst of {} connections answered within {:.1f} s\n"
      "server peak resident memory {:.0f} MiB; SIGTERM to exit {:.2f} s, exit status {}; state saved: {}\n",
      good_total, static_cast<double>(tally.good_ms.size()) / run_seconds, p50, p99,
      cut_after_s.empty() ? 0.0 : cut_after_s[cut_after_s.size() / 2], request_timeout, burst, burst_seconds, rss,
      shutdown_s, exit_status, state_saved ? "yes" : "no");

  std::vector<std::string> failures;
  if (server_died) failures.push_back("the server died during the run");
  if (good_other > 0) failures.push_back(fmt::format("{} good requests got neither 200 nor 503", good_other));
  if (bad_5xx > 0) failures.push_back(fmt::format("{} hostile requests got a 5xx other than 503", bad_5xx));
  if (tally.good_ms.empty() || p99 > max_p99_ms)
    failures.push_back(fmt::format("p99 of good requests {:.1f} ms > {} ms", p99, max_p99_ms));
  if (rss < 0 || rss > max_rss_mb) failures.push_back(fmt::format("peak memory {:.0f} MiB > {} MiB", rss, max_rss_mb));
  if (exit_status != 0 || shutdown_s > max_shutdown_s)
    failures.push_back(fmt::format("SIGTERM: exit status {} after {:.1f} s (bound {} s)", exit_status, shutdown_s,
                                   max_shutdown_s));
  if (!state_saved) failures.push_back("no state file was saved");
  for (const auto& f : failures) std::cout << "FAILED: " << f << "\n";
  if (failures.empty()) std::cout << "all checks passed\n";
  std::filesystem::remove_all(dir);
  return failures.empty() ? 0 : 1;
}
