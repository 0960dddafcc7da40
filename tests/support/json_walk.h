// Documents of a JSON Schema for the grammar's tests: a schema compiled
// from its text, whether a text is a whole document of it, and a random
// walk over the bytes a JsonGrammar takes (no prefix it takes is a dead
// end, and what it completes holds).
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/sampling/json_grammar.h"
#include "runtime/sampling/json_schema.h"

namespace cohost::runtime::testing {

// `text`'s schema; a failure of the test (and any object) where it does
// not compile.
inline JsonSchema CompiledSchema(std::string_view text) {
  absl::StatusOr<JsonSchema> schema = JsonSchema::Compile(nlohmann::json::parse(text));
  EXPECT_TRUE(schema.ok()) << text << ": " << schema.status();
  return schema.ok() ? *std::move(schema) : JsonSchema::AnyObject();
}

// `text` is a whole document of `schema`.
inline bool IsDocument(const JsonSchema& schema, std::string_view text) {
  JsonGrammar g(schema);
  return g.FeedAll(schema, text) && g.Complete();
}

struct JsonWalk {
  std::string doc;        // the bytes taken
  bool complete = false;  // a whole document
  bool stuck = false;     // a state that took no byte and was not whole
};

// At most `steps` bytes, each drawn from those the state takes; a byte of
// structure ('}', ']', '"', ',') is preferred, each with chance 1/`bias`,
// so that walks end.
inline JsonWalk WalkJson(const JsonSchema& schema, std::mt19937& rng, int steps, int bias) {
  JsonWalk walk;
  JsonGrammar g(schema);
  for (int step = 0; step < steps && !g.Complete(); ++step) {
    std::vector<uint8_t> next;
    for (int b = 0; b < 256; ++b) {
      JsonGrammar copy = g;
      if (copy.Feed(schema, static_cast<uint8_t>(b))) next.push_back(static_cast<uint8_t>(b));
    }
    if (next.empty()) {
      walk.stuck = true;
      return walk;
    }
    uint8_t b = next[rng() % next.size()];
    for (const uint8_t s : next) {
      if ((s == '}' || s == ']' || s == '"' || s == ',') && rng() % bias == 0) b = s;
    }
    g.Feed(schema, b);
    walk.doc += static_cast<char>(b);
  }
  walk.complete = g.Complete();
  return walk;
}

}  // namespace cohost::runtime::testing
