// What the model-file targets hold a file's answer to, and the use of a
// tokenizer that loaded.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "runtime/loader/tokenizer_spec.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_target.h"

namespace cohost::fuzz {

// A bad file is the operator's to fix: its error says which file and why.
inline void CheckFileError(const absl::Status& status, const std::string& path) {
  FUZZ_CHECK(absl::IsInvalidArgument(status) || absl::IsUnimplemented(status) ||
                 absl::IsFailedPrecondition(status),
             "%s", status.ToString().c_str());
  FUZZ_CHECK(status.message().find(path) != std::string::npos, "does not name the file: %s",
             status.ToString().c_str());
}

// A tokenizer from a file: made, then a chat formatted, encoded and decoded.
// Its errors are the file's (Create) or the chat's, never a crash.
inline void UseTokenizer(const runtime::TokenizerSpec& spec) {
  absl::StatusOr<std::unique_ptr<runtime::Tokenizer>> tokenizer = runtime::Tokenizer::Create(spec);
  if (!tokenizer.ok()) {
    FUZZ_CHECK(
        absl::IsInvalidArgument(tokenizer.status()) || absl::IsUnimplemented(tokenizer.status()),
        "%s", tokenizer.status().ToString().c_str());
    return;
  }
  const runtime::Tokenizer& t = **tokenizer;
  const std::vector<runtime::ChatMessage> chat = {
      {.role = "system", .content = "Be brief."},
      {.role = "user", .content = "Hello, w\xc3\xb6rld! <|im_end|> \xe2\x98\x83 12345"}};
  absl::StatusOr<std::vector<int32_t>> ids = t.EncodeChat(chat);
  if (!ids.ok()) ids = t.Encode(chat[1].content);
  if (!ids.ok()) return;
  (void)t.Decode(*ids, /*skip_special=*/true);
  (void)t.Decode(*ids, /*skip_special=*/false);
  for (const int32_t id : *ids) (void)t.TokenBytes(id);
}

}  // namespace cohost::fuzz
