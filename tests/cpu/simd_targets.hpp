// Runs a test body once per SIMD target compiled into the CPU backend (STYLE.md §2.9).
#pragma once

#include <doctest/doctest.h>
#include <hwy/targets.h>

#include <cstdint>
#include <string>

namespace dsv4::test {

/// Calls body() with each compiled-and-supported Highway target forced in turn.
template <class Body>
void for_each_simd_target(Body&& body) {
  struct Reset {
    ~Reset() { hwy::SetSupportedTargetsForTest(0); }
  } reset;
  for (const std::int64_t t : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(t);
    const std::string target = hwy::TargetName(t);
    CAPTURE(target);
    body();
  }
}

}  // namespace dsv4::test
