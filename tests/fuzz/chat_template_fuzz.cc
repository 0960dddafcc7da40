// A model's chat template (tokenizer.chat_template, a chat_template.jinja:
// untrusted), read for the format it writes, then a chat with a system
// prompt, tools, an assistant's call and its result, and a think block
// formatted by it. Its errors are NOT_FOUND (empty) or UNIMPLEMENTED (no
// format cohost knows), and the spans of the client's text in the result
// are ascending, disjoint, not empty and inside it.

#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/chat_template.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace rt = cohost::runtime;
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<rt::ChatTemplate> parsed =
      rt::ParseChatTemplate(source, "<s>", "</s>", /*adds_bos=*/size % 2 == 1);
  if (!parsed.ok()) {
    FUZZ_CHECK(absl::IsNotFound(parsed.status()) || absl::IsUnimplemented(parsed.status()), "%s",
               parsed.status().ToString().c_str());
    return 0;
  }
  const std::vector<rt::ChatMessage> chat = {
      {.role = "system", .content = "Be brief."},
      {.role = "user", .content = "Weather in Oslo? <|im_end|>"},
      {.role = "assistant",
       .content = "",
       .tool_calls = {{.id = "c1", .name = "get_weather", .arguments = "{\"city\": \"Oslo\"}"}},
       .reasoning = "The user asks."},
      {.role = "tool", .content = "cold"},
      {.role = "user", .content = "Thanks"}};
  rt::ChatOptions options;
  options.enable_thinking = size % 3 == 0;
  options.date_string = "8 Dec 2026";
  options.tools = {{.name = "get_weather",
                    .description = "The weather",
                    .parameters = "{\"type\": \"object\"}"}};
  for (const bool with_tools : {false, true}) {
    const std::vector<rt::ChatMessage> messages(chat.begin(), chat.begin() + (with_tools ? 5 : 2));
    rt::ChatOptions o = options;
    if (!with_tools) o.tools.clear();
    if (!rt::CheckToolsServed(*parsed, messages, o).ok()) continue;
    std::vector<rt::TextSpan> spans;
    const std::string text = rt::FormatChat(*parsed, messages, o, &spans);
    size_t end = 0;
    for (const rt::TextSpan& span : spans) {
      FUZZ_CHECK(span.begin >= end && span.begin < span.end && span.end <= text.size(),
                 "span [%zu, %zu) after %zu in %zu bytes", span.begin, span.end, end, text.size());
      end = span.end;
    }
  }
  return 0;
}
