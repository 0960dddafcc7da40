// What a CUDA test does where its backend cannot be made. On a machine
// without a CUDA device (or a build without CUDA) it skips, saying "no CUDA
// device" (GTEST_SKIP: visible in every test log). Where COHOST_REQUIRE_CUDA
// is set (check.sh sets it on a machine with a GPU) it fails instead: a device
// left unusable by an earlier test's fault (a sticky illegal address) is then
// reported by each test it stops, not passed for a machine without one.
#pragma once

#include <cstdlib>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace cohost::testing {

// Call where making the backend failed, then return: records a skip, or a
// fatal failure under COHOST_REQUIRE_CUDA (which a fixture's SetUp also
// stops the test body for).
inline void SkipWithoutCuda(const absl::Status& why) {
  if (std::getenv("COHOST_REQUIRE_CUDA") != nullptr) {
    GTEST_FAIL() << "COHOST_REQUIRE_CUDA is set, and the CUDA backend cannot be made: " << why;
  }
  GTEST_SKIP() << "no CUDA device: " << why;
}

}  // namespace cohost::testing
