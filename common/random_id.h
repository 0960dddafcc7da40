// Random 64-bit values for ids a client sees (response, request and tool-call
// ids): one generator per thread, seeded from std::random_device. Not for
// secrets.
#pragma once

#include <cstdint>
#include <random>

namespace cohost {

inline uint64_t RandomId64() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace cohost
