// The machine's physical core count: distinct (physical id, core id) pairs of /proc/cpuinfo,
// the hardware concurrency where that file is missing or says nothing.
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "dsv4/cpu/kernels.hpp"

namespace dsv4::cpu::kernels {

int physical_cores() {
  static const int cores = [] {
    std::ifstream in("/proc/cpuinfo");
    std::set<std::pair<int, int>> seen;
    int phys = 0;
    std::string line;
    while (std::getline(in, line)) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      const std::string value = line.substr(colon + 1);
      try {
        if (line.rfind("physical id", 0) == 0) phys = std::stoi(value);
        if (line.rfind("core id", 0) == 0) seen.emplace(phys, std::stoi(value));
      } catch (...) {
        // a malformed line: ignore it
      }
    }
    const int hw = static_cast<int>(std::thread::hardware_concurrency());
    int n = static_cast<int>(seen.size());
    if (n <= 0) n = hw;
    if (hw > 0 && n > hw) n = hw;
    return n > 0 ? n : 1;
  }();
  return cores;
}

}  // namespace dsv4::cpu::kernels
