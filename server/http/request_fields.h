// Reading an OpenAI request body's fields: the one form of the error that
// names a bad field (OpenAI's `param`), for every part of the body's parser
// (openai_request.cc, openai_tools.cc).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/http/openai_format.h"

namespace cohost::server::http {

// INVALID_ARGUMENT "<field> <what>", naming the field.
inline absl::Status Bad(std::string_view field, std::string_view what) {
  return WithParam(
      absl::InvalidArgumentError(absl::StrCat(std::string(field), " ", std::string(what))), field);
}

// The field when present and not null.
inline const nlohmann::json* Field(const nlohmann::json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

// A boolean field; false when absent or null.
inline absl::StatusOr<bool> Boolean(const nlohmann::json& body, const char* name) {
  const nlohmann::json* v = Field(body, name);
  if (v == nullptr) return false;
  if (!v->is_boolean()) return Bad(name, "must be true or false");
  return v->get<bool>();
}

}  // namespace cohost::server::http
