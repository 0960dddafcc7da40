// A client's JSON Schema (response_format, a strict tool's parameters) and
// the document a model writes under it: the schema's text, a NUL, then the
// document's bytes. Compile answers OK or INVALID_ARGUMENT. The grammar
// takes the bytes it allows one at a time (skipping those it refuses),
// then the document is finished by a fixed preference among the bytes it
// allows; on the way it is never stuck (json_grammar.h's promise, which
// keeps a constrained model from a dead end), and a document it lets end
// is JSON valid under the schema by the standard's rules (schema_check.h,
// written apart from the grammar).

#include <optional>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"
#include "runtime/sampling/json_grammar.h"
#include "runtime/sampling/json_schema.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/schema_check.h"

namespace cohost::fuzz {
namespace {

using runtime::JsonGrammar;
using runtime::JsonSchema;

// Bytes that close what is open first, then those that start the shortest
// values, then the rest: a walk by it ends where the schema lets it.
constexpr std::string_view kFinishOrder =
    "}]\"0123456789tfnabcdeghijklmopqrsuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-.:,[{_ +eE@/";
constexpr int kMaxFinishBytes = 4096;

bool Takes(const JsonSchema& schema, const JsonGrammar& state, uint8_t byte) {
  JsonGrammar next = state;
  return next.Feed(schema, byte);
}

bool SomeByteGoesOn(const JsonSchema& schema, const JsonGrammar& state) {
  for (int byte = 0; byte < 256; ++byte) {
    if (Takes(schema, state, static_cast<uint8_t>(byte))) return true;
  }
  return false;
}

// Feeds the first byte of kFinishOrder the state takes (else the lowest it
// takes) to it and `written`; false where it takes none.
bool FinishStep(const JsonSchema& schema, JsonGrammar* state, std::string* written) {
  for (const char c : kFinishOrder) {
    if (state->Feed(schema, static_cast<uint8_t>(c))) {
      written->push_back(c);
      return true;
    }
  }
  for (int byte = 0; byte < 256; ++byte) {
    if (state->Feed(schema, static_cast<uint8_t>(byte))) {
      written->push_back(static_cast<char>(byte));
      return true;
    }
  }
  return false;
}

void Run(std::string_view input) {
  const size_t nul = input.find('\0');
  const std::string_view schema_text = input.substr(0, nul);
  const std::string_view document =
      nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  const nlohmann::json parsed =
      nlohmann::json::parse(schema_text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return;
  absl::StatusOr<JsonSchema> schema = JsonSchema::Compile(parsed);
  if (!schema.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(schema.status()), "%s", schema.status().ToString().c_str());
    return;
  }
  JsonGrammar state(*schema);
  FUZZ_CHECK(SomeByteGoesOn(*schema, state), "a fresh document is stuck");
  std::string written;  // the bytes the grammar took
  for (const char c : document) {
    if (!state.Feed(*schema, static_cast<uint8_t>(c))) continue;
    written.push_back(c);
    (void)state.MaskKey(*schema, 16);
    FUZZ_CHECK(state.Complete() || SomeByteGoesOn(*schema, state), "stuck after %s",
               written.c_str());
  }
  for (int i = 0; i < kMaxFinishBytes && !state.Complete(); ++i) {
    FUZZ_CHECK(FinishStep(*schema, &state, &written), "stuck after %s", written.c_str());
  }
  if (!state.Complete()) return;
  int error_id = 0;
  std::string error;
  const std::optional<nlohmann::json> value = ParseDocument(written, &error_id, &error);
  // RFC 8259 sets no range on numbers; nlohmann refuses those past a
  // double's (406), as many parsers do. An unbounded number may be one.
  if (!value && error_id == 406) return;
  FUZZ_CHECK(value, "ends a document that is no JSON (%s): %s", error.c_str(), written.c_str());
  FUZZ_CHECK(SchemaCheck(parsed).Valid(*value), "ends a document the schema refuses: %s",
             written.c_str());
}

}  // namespace
}  // namespace cohost::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cohost::fuzz::Run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
