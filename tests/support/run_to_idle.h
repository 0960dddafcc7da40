// Steps an engine on the test's thread until it has nothing left to do.
#pragma once

#include "gtest/gtest.h"
#include "runtime/engine/engine.h"

namespace cohost::runtime::testing {

// Fails the test if a step fails, or if work remains after `max_steps`
// (a request that can never finish: a deadlock).
inline void RunToIdle(Engine& e, int max_steps = 20000) {
  for (int i = 0; i < max_steps; ++i) {
    absl::StatusOr<bool> more = e.Step();
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) return;
  }
  FAIL() << "engine still busy after " << max_steps << " steps (deadlock?)";
}

}  // namespace cohost::runtime::testing
