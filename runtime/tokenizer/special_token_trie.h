// The spellings of a vocabulary's special tokens (control and user-defined)
// as a byte trie, so that finding the tokens spelled at a position of a
// prompt costs the length of the longest one, not one comparison per token
// that shares the first byte: Llama 3 has 256 control tokens starting "<|"
// (every '<' in a code or HTML prompt tried them all), and a model file may
// define millions.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace cohost::runtime {

class SpecialTokenTrie {
 public:
  SpecialTokenTrie() { root_.fill(-1); }

  // A non-empty spelling. Of ids added for one spelling, the first control
  // token's and the first other's are kept (the control one may be refused
  // where it stands; the other then serves).
  void Add(std::string_view spelling, int32_t id, bool control) {
    int32_t node = 0;
    for (const char c : spelling) {
      int32_t next = Child(node, c);
      if (next < 0) {
        next = static_cast<int32_t>(spelled_.size());
        spelled_.push_back({-1, -1});
        if (node == 0) {
          root_[static_cast<uint8_t>(c)] = next;
        } else {
          edges_[Edge(node, c)] = next;
        }
      }
      node = next;
    }
    int32_t& kept = control ? spelled_[node].control : spelled_[node].other;
    if (node != 0 && kept < 0) kept = id;
  }

  // Calls fn(id, length) for each token spelled at the start of `text`,
  // shortest first; of two with one spelling, the higher id first (so that
  // a caller keeping the last one it accepts keeps the longest, lowest id).
  template <typename Fn>
  void ForEachPrefix(std::string_view text, Fn&& fn) const {
    int32_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      node = Child(node, text[i]);
      if (node < 0) return;
      const auto [a, b] = spelled_[node];
      if (std::max(a, b) >= 0) fn(std::max(a, b), i + 1);
      if (std::min(a, b) >= 0) fn(std::min(a, b), i + 1);
    }
  }

 private:
  static uint64_t Edge(int32_t node, char c) {
    return (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(c);
  }
  int32_t Child(int32_t node, char c) const {
    if (node == 0) return root_[static_cast<uint8_t>(c)];
    const auto it = edges_.find(Edge(node, c));
    return it == edges_.end() ? -1 : it->second;
  }

  struct Spelled {
    int32_t control = -1, other = -1;  // the tokens spelled up to a node
  };
  std::vector<Spelled> spelled_{Spelled{}};       // node 0 is the root
  std::array<int32_t, 256> root_{};               // the root's children (most bytes start none)
  absl::flat_hash_map<uint64_t, int32_t> edges_;  // (node, byte) -> child, below the root
};

}  // namespace cohost::runtime
