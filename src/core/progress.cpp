#include <adx/core/progress.hpp>

#include <fmt/format.h>

#include <cstdio>

namespace adx {

ProgressCallback terminal_progress_bar() {
  return [](const EpochReport& r) {
    constexpr int width = 28;
    const int filled = r.epochs > 0 ? static_cast<int>(width * r.epoch / r.epochs) : width;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::string line = fmt::format("\r{:>12} [{}] {:>4}/{:<4} loss {:.5f}", r.stage, bar, r.epoch, r.epochs,
                                   r.train_loss);
    if (r.val_loss >= 0) line += fmt::format(" val {:.5f}{}", r.val_loss, r.improved ? "*" : " ");
    line += fmt::format(" {:.2f}s/epoch", r.seconds);
    std::fputs(line.c_str(), stderr);
    if (r.last) std::fputs("\n", stderr);
    std::fflush(stderr);
  };
}

}  // namespace adx
