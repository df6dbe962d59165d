// A load test of `adx serve` on 127.0.0.1: N concurrent clients send a fixed number of
// POST /score requests; it reports requests/s, client-side latency percentiles, and the
// process's resident memory after the first and before the last 10% of requests (the
// server runs in this process, so a leak would show as growth between the two).
//   server_load [--model FILE.adx] [--clients 8] [--requests 20000] [--rows 1] [--server-threads 8]
// Without --model it fits an autoencoder on 16-dimensional synthetic rows first.
#include <adx/adx.hpp>
#include <adx/serve/production.hpp>
#include <adx/serve/server.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>
#include <unistd.h>

namespace {

double resident_mb() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"load test of the adx scoring server on 127.0.0.1"};
  std::string model_path;
  int clients = 8, rows = 1;
  int64_t requests = 20000, server_threads = 8;
  app.add_option("--model", model_path, "model file to serve (tabular); default: a fitted autoencoder");
  app.add_option("--clients", clients, "concurrent clients")->capture_default_str();
  app.add_option("--requests", requests, "requests in all")->capture_default_str();
  app.add_option("--rows", rows, "rows per request")->capture_default_str();
  app.add_option("--server-threads", server_threads, "threads answering requests")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    std::unique_ptr<adx::Detector> detector;
    if (model_path.empty()) {
      torch::manual_seed(0);
      const auto basis = torch::randn({3, 16});
      detector = adx::make_detector("autoencoder", {{"train.epochs", "10"}, {"runtime.threads", "1"}});
      detector->fit(adx::Data::tabular(torch::randn({2000, 3}).matmul(basis) + 0.05 * torch::randn({2000, 16})));
    } else {
      detector = adx::load(model_path);
    }
    const auto traits = detector->fitted_kind()->traits();
    ADX_CHECK_AS(adx::OptionError, traits.rows_are_items && !traits.image_rows,
                 "the load test sends JSON rows: serve a tabular model");
    const int64_t width = detector->item_shape()[0];
    adx::ProductionDetector production(std::move(detector));
    adx::ScoringServer server(production, adx::ServerOptions().port(0).threads(server_threads));
    const int port = server.start();

    std::string body = "{\"rows\": [";
    for (int r = 0; r < rows; ++r) {
      body += r ? ",[" : "[";
      for (int64_t j = 0; j < width; ++j) body += fmt::format("{}{:.4f}", j ? "," : "", 0.1 * static_cast<double>((j * 7 + r) % 11) - 0.5);
      body += "]";
    }
    body += "]}";

    std::atomic<int64_t> next{0}, failures{0};
    std::vector<std::vector<double>> latencies(static_cast<size_t>(clients));
    double rss_early = 0, rss_late = 0;
    const int64_t early = requests / 10, late = requests - requests / 10;
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        httplib::Client client("127.0.0.1", port);
        client.set_keep_alive(true);
        client.set_tcp_nodelay(true);
        for (int64_t i = next++; i < requests; i = next++) {
          if (i == early) rss_early = resident_mb();
          if (i == late) rss_late = resident_mb();
          const auto t0 = std::chrono::steady_clock::now();
          auto res = client.Post("/score", body, "application/json");
          latencies[static_cast<size_t>(c)].push_back(
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
          if (!res || res->status != 200) ++failures;
        }
      });
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    server.stop();
    std::vector<double> all;
    for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::cout << fmt::format(
        "{} requests ({} row(s) of {} values each) from {} clients, {} server threads, {} hardware threads\n"
        "  {:.0f} requests/s, {:.0f} rows/s; failures {}\n"
        "  latency ms: p50 {:.3f}  p95 {:.3f}  p99 {:.3f}  max {:.3f}\n"
        "  resident memory: {:.1f} MB after the first 10%, {:.1f} MB before the last 10% ({:+.1f} MB)\n",
        requests, rows, width, clients, server_threads, std::thread::hardware_concurrency(), requests / seconds,
        requests * rows / seconds, failures.load(), adx::quantile(all, 0.5), adx::quantile(all, 0.95),
        adx::quantile(all, 0.99), *std::max_element(all.begin(), all.end()), rss_early, rss_late, rss_late - rss_early);
    const auto health = production.health();
    std::cout << fmt::format("  server-side scoring latency ms over the last {} calls: p50 {:.3f}  p99 {:.3f}\n",
                             health.latency.count, health.latency.p50_ms, health.latency.p99_ms);
    return failures.load() == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
