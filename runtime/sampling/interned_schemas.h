// Compiled JSON schemas shared by what they hold a document to. Requests
// whose schemas compile to equal grammars (JsonSchema's ==: annotations such
// as descriptions, key order and spacing aside) get one compiled JsonSchema
// while anything holds it: a request, or a mask cached for it.
// JsonConstraint caches its masks by the schema's address, so a service
// that sends one schema with every request has the vocabulary walked once
// per state of that schema, not once per request.
//
// The table keeps only weak references, by the compiled schema's hash: what
// a client sends costs it nothing once no request or mask holds it. Like
// prefix caching, the sharing crosses tenants: a request's first token may
// come sooner because another sent its schema before.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"
#include "runtime/sampling/json_schema.h"

namespace cohost::runtime {

class InternedSchemas {
 public:
  // `max_entries`: past this many schemas held at once, a new one is
  // compiled unshared (each held one is held by a request or a cached mask,
  // which other limits bound).
  explicit InternedSchemas(size_t max_entries = 4096) : max_entries_(max_entries) {}

  // The process's table: what the server's front doors compile through.
  static InternedSchemas& Global();

  // The schema compiled, or an equal one compiled before and still held;
  // JsonSchema::Compile's errors. Thread-safe.
  absl::StatusOr<std::shared_ptr<const JsonSchema>> Compile(const nlohmann::json& schema);
  // The entries kept: the schemas held now, and some no longer held (swept
  // when the table has doubled since the last sweep, or is full).
  size_t size() const;

 private:
  // Drops the entries nothing holds any more. Needs mu_.
  void SweepLocked();

  const size_t max_entries_;
  mutable std::mutex mu_;
  // By absl::Hash of the compiled schema; a bucket's schemas are compared.
  absl::flat_hash_map<size_t, std::vector<std::weak_ptr<const JsonSchema>>> table_;  // mu_
  size_t entries_ = 0;    // guarded by mu_: the weak references in table_
  size_t sweep_at_ = 64;  // guarded by mu_
  // Inserts left to refuse unswept after a sweep that found the table full
  // of held schemas, so that a full table costs a walk per max_entries_ / 8
  // new schemas, not one each. Guarded by mu_.
  size_t unswept_ = 0;
};

}  // namespace cohost::runtime
