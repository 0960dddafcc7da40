// SipHash-2-4 (Aumasson and Bernstein, 2012) over 64-bit words: a keyed
// pseudorandom function, so that nobody without the key can search for two
// inputs with one hash. The prefix cache keys its KV blocks by such a hash
// under a key drawn once per process (BlockAllocator::HashBlock): with an
// unkeyed hash a client could search offline for a block of tokens whose
// hash is that of another prompt's block, plant its KV under that hash, and
// have later requests with the real prompt read it (prefix-cache
// poisoning; vLLM's GHSA-rm76-4mrf-v9r8).
#pragma once

#include <bit>
#include <cstdint>

#include "absl/types/span.h"

namespace cohost::runtime {

struct SipKey {
  uint64_t k0 = 0, k1 = 0;
};

// SipHash-2-4 of the little-endian bytes of `words` (8 bytes each) under
// `key`: the reference function on such a message (tests/runtime/batching
// checks the paper's vectors).
inline uint64_t SipHash24(const SipKey& key, absl::Span<const uint64_t> words) {
  uint64_t v0 = key.k0 ^ 0x736f6d6570736575ull, v1 = key.k1 ^ 0x646f72616e646f6dull;
  uint64_t v2 = key.k0 ^ 0x6c7967656e657261ull, v3 = key.k1 ^ 0x7465646279746573ull;
  const auto round = [&] {
    v0 += v1;
    v1 = std::rotl(v1, 13) ^ v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16) ^ v2;
    v0 += v3;
    v3 = std::rotl(v3, 21) ^ v0;
    v2 += v1;
    v1 = std::rotl(v1, 17) ^ v2;
    v2 = std::rotl(v2, 32);
  };
  for (const uint64_t m : words) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  // The last block: no bytes left over, the length (mod 256) in its top byte.
  const uint64_t b = static_cast<uint64_t>(words.size() * 8) << 56;
  v3 ^= b;
  round();
  round();
  v0 ^= b;
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace cohost::runtime
