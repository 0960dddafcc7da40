// Compiled JSON schemas shared by their value. Requests that send the same
// schema (equal as JSON values: key order and spacing aside) get one
// compiled JsonSchema while anything holds it: a request, or a mask cached
// for it. JsonConstraint caches its masks by the schema's address, so a
// service that sends one schema with every request has the vocabulary
// walked once per state of that schema, not once per request.
//
// Like prefix caching, the sharing crosses tenants: a request's first token
// may come sooner because another sent its schema before.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"
#include "runtime/sampling/json_schema.h"

namespace cohost::runtime {

class InternedSchemas {
 public:
  // The process's table: what the server's front doors compile through.
  static InternedSchemas& Global();

  // The schema compiled, or the one already compiled from an equal value;
  // JsonSchema::Compile's errors. Thread-safe.
  absl::StatusOr<std::shared_ptr<const JsonSchema>> Compile(const nlohmann::json& schema);
  // The entries kept: the schemas held now, and some no longer held (swept
  // when the table has doubled since the last sweep).
  size_t size() const;

 private:
  // Past this many live schemas a new one is compiled unshared (each live
  // one is held by a request or a cached mask, which other limits bound).
  static constexpr size_t kMaxEntries = 4096;
  // Drops the entries nothing holds any more. Needs mu_.
  void SweepLocked();

  mutable std::mutex mu_;
  // By the schema's canonical text (nlohmann's dump: sorted keys, no spaces).
  absl::flat_hash_map<std::string, std::weak_ptr<const JsonSchema>> table_;  // guarded by mu_
  size_t sweep_at_ = 64;                                                     // guarded by mu_
};

}  // namespace cohost::runtime
