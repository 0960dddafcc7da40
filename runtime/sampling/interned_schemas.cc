#include "runtime/sampling/interned_schemas.h"

#include <algorithm>
#include <utility>

#include "nlohmann/json.hpp"

namespace cohost::runtime {

InternedSchemas& InternedSchemas::Global() {
  static InternedSchemas* table = new InternedSchemas();
  return *table;
}

absl::StatusOr<std::shared_ptr<const JsonSchema>> InternedSchemas::Compile(
    const nlohmann::json& schema) {
  std::string key = schema.dump();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = table_.find(key); it != table_.end()) {
      if (std::shared_ptr<const JsonSchema> held = it->second.lock()) return held;
    }
  }
  // Compiled outside the lock: two threads may compile one schema, and the
  // first to finish is the one kept.
  absl::StatusOr<JsonSchema> compiled = JsonSchema::Compile(schema);
  if (!compiled.ok()) return compiled.status();
  auto fresh = std::make_shared<const JsonSchema>(*std::move(compiled));
  std::lock_guard<std::mutex> lock(mu_);
  std::weak_ptr<const JsonSchema>& entry = table_[key];
  if (std::shared_ptr<const JsonSchema> held = entry.lock()) return held;
  entry = fresh;
  if (table_.size() >= sweep_at_) SweepLocked();
  if (table_.size() > kMaxEntries) table_.erase(key);  // too many held: this one unshared
  return fresh;
}

void InternedSchemas::SweepLocked() {
  absl::erase_if(table_, [](const auto& entry) { return entry.second.expired(); });
  sweep_at_ = std::max<size_t>(64, 2 * table_.size());
}

size_t InternedSchemas::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return table_.size();
}

}  // namespace cohost::runtime
