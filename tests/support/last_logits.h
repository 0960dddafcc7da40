// Prefills one prompt through a model on a fresh paged cache, in chunks, and
// returns its last position's logits: what the reference tests compare.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/model/batch.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"

namespace cohost::testing {

inline std::vector<float> LastLogits(runtime::Model& model, kernels::Backend* backend,
                                     const std::vector<int32_t>& ids, int32_t chunk) {
  const int32_t bs = 16;
  const int32_t n = static_cast<int32_t>(ids.size());
  const int32_t num_blocks = (n + bs - 1) / bs + 1;
  auto kv = runtime::KvCache::Create(backend, model.config(), num_blocks, bs);
  EXPECT_TRUE(kv.ok()) << kv.status();
  if (!kv.ok()) return {};
  std::vector<float> logits;
  for (int32_t start = 0; start < n; start += chunk) {
    const int32_t end = std::min(n, start + chunk);
    runtime::Batch b;
    runtime::FillSingleSequenceBatch(absl::MakeConstSpan(ids).subspan(start, end - start), start,
                                     num_blocks, bs, end == n, &b);
    absl::Status s = model.Forward(b, **kv, &logits);
    EXPECT_TRUE(s.ok()) << s;
  }
  return logits;
}

// The largest |logits[ids[i]] - want[i]|: a reference's logits at the ids it
// kept, against a whole row.
inline float MaxErrorAt(const std::vector<float>& logits, const std::vector<int32_t>& ids,
                        const std::vector<float>& want) {
  float max_err = 0;
  for (size_t i = 0; i < ids.size() && i < want.size(); ++i) {
    max_err = std::max(max_err, std::fabs(logits[ids[i]] - want[i]));
  }
  return max_err;
}

}  // namespace cohost::testing
