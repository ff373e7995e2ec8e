// A one-line progress bar on stderr for the commands that write large files (quantize, convert).
#pragma once

#include <fmt/core.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <dsv4/formats/gguf_recipe.hpp>
#include <dsv4/io/gguf_quantize.hpp>
#include <string>

namespace dsv4::cli {

/// "1.50 GiB", "12.00 MiB", "512 B".
inline std::string human_bytes(double v) {
  if (v >= 1073741824.0) return fmt::format("{:.2f} GiB", v / 1073741824.0);
  if (v >= 1048576.0) return fmt::format("{:.2f} MiB", v / 1048576.0);
  if (v >= 1024.0) return fmt::format("{:.2f} KiB", v / 1024.0);
  return fmt::format("{:.0f} B", v);
}

/// Redrawn at most ten times a second: bar, percentage, tensor i/n, its name and types.
class ProgressBar {
 public:
  void update(const io::QuantizeProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (p.done < p.total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    int width = 80;
    winsize ws{};
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) width = ws.ws_col;
    const double frac =
        p.total > 0 ? static_cast<double>(p.done) / static_cast<double>(p.total) : 1;
    constexpr int kBar = 24;
    const int filled = static_cast<int>(frac * kBar);
    std::string line =
        fmt::format("[{}{}] {:3.0f}% {}/{} {} {}->{}", std::string(filled, '#'),
                    std::string(kBar - filled, '.'), 100 * frac, p.tensor + 1, p.n_tensors, p.name,
                    gguf::type_name(p.from), gguf::type_name(p.to));
    if (static_cast<int>(line.size()) > width - 1) line.resize(static_cast<std::size_t>(width - 1));
    fmt::print(stderr, "\r{:<{}}", line, width - 1);
    std::fflush(stderr);
    shown_ = true;
  }
  void clear() {
    if (!shown_) return;
    fmt::print(stderr, "\r\033[K");
    std::fflush(stderr);
    shown_ = false;
  }

 private:
  std::chrono::steady_clock::time_point last_{};
  bool shown_ = false;
};

}  // namespace dsv4::cli
