#include "runtime/sampling/interned_schemas.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"

namespace cohost::runtime {

InternedSchemas& InternedSchemas::Global() {
  static InternedSchemas* table = new InternedSchemas();
  return *table;
}

absl::StatusOr<std::shared_ptr<const JsonSchema>> InternedSchemas::Compile(
    const nlohmann::json& schema) {
  // Compiled first, outside the lock: the compiled schema is the key, small
  // and bounded (kMaxSchemaNodes) whatever the text that made it.
  absl::StatusOr<JsonSchema> compiled = JsonSchema::Compile(schema);
  if (!compiled.ok()) return compiled.status();
  const size_t hash = absl::Hash<JsonSchema>{}(*compiled);
  std::lock_guard<std::mutex> lock(mu_);
  std::weak_ptr<const JsonSchema>* free_slot = nullptr;  // an entry let go, in the bucket
  if (auto it = table_.find(hash); it != table_.end()) {
    for (std::weak_ptr<const JsonSchema>& entry : it->second) {
      std::shared_ptr<const JsonSchema> held = entry.lock();
      if (held == nullptr) {
        free_slot = free_slot != nullptr ? free_slot : &entry;
      } else if (*held == *compiled) {
        return held;
      }
    }
  }
  auto fresh = std::make_shared<const JsonSchema>(*std::move(compiled));
  if (free_slot != nullptr) {
    *free_slot = fresh;
    return fresh;
  }
  if (entries_ >= max_entries_ && unswept_ > 0) {
    --unswept_;  // full at the last sweep too: no walk over the table for each
    return fresh;
  }
  if (entries_ >= sweep_at_ || entries_ >= max_entries_) SweepLocked();
  if (entries_ >= max_entries_) {  // too many held at once: this one unshared
    unswept_ = max_entries_ / 8;
    return fresh;
  }
  table_[hash].push_back(fresh);
  ++entries_;
  return fresh;
}

void InternedSchemas::SweepLocked() {
  entries_ = 0;
  for (auto it = table_.begin(); it != table_.end();) {
    std::vector<std::weak_ptr<const JsonSchema>>& bucket = it->second;
    bucket.erase(std::remove_if(bucket.begin(), bucket.end(),
                                [](const auto& entry) { return entry.expired(); }),
                 bucket.end());
    entries_ += bucket.size();
    if (bucket.empty()) {
      table_.erase(it++);
    } else {
      ++it;
    }
  }
  sweep_at_ = std::min(std::max<size_t>(2 * entries_, 64), max_entries_ + 1);
}

size_t InternedSchemas::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_;
}

}  // namespace cohost::runtime
