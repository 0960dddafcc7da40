// Chat formatting for the prompt formats cohost knows: ChatML (SmolLM2, Qwen),
// Llama 3, Llama 2, Mistral [INST] and DeepSeek-R1's (its distilled models'). This is NOT a Jinja
// engine: the model's Jinja template source is only inspected for markers to pick one of these
// hand-written formats (and for a literal default system message).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace cohost::runtime {

// A call of a function an assistant turn made (OpenAI's tool_calls).
struct ChatToolCall {
  std::string id;  // the client's; the known templates do not write it
  std::string name;
  std::string arguments;  // a JSON object's text (written again by tojson)
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool" (others pass through)
  std::string content;
  std::vector<ChatToolCall> tool_calls = {};  // an assistant turn's calls
  // An assistant turn's reasoning apart from its content (vLLM's
  // reasoning_content), which Qwen3's template writes as the turn's think
  // block where it writes one; unset, it reads the block from the content.
  std::optional<std::string> reasoning = std::nullopt;
};

// A function the model may call (OpenAI's tools of type "function").
struct ChatTool {
  std::string name;
  std::string description;  // empty: none
  std::string parameters;   // a JSON Schema as JSON text; empty: none
};

enum class ChatFormat : uint8_t {
  kChatMl,    // <|im_start|>role\ncontent<|im_end|>\n
  kLlama3,    // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  kLlama2,    // [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] ...
  kMistral,   // [INST] user [/INST]answer</s>[INST] ...
  kDeepSeek,  // system<｜User｜>user<｜Assistant｜>answer<｜end▁of▁sentence｜>...
};

struct ChatTemplate {
  ChatFormat format = ChatFormat::kChatMl;
  // System message the template inserts when the conversation has none
  // (SmolLM2: "You are a helpful AI assistant named SmolLM, ...").
  std::string default_system;
  // Written at the start when the template begins with bos_token but the
  // tokenizer does not add BOS itself; empty otherwise.
  std::string bos_text;
  std::string eos_text;       // ends an assistant turn in the [INST] formats
  std::string bos_turn_text;  // starts each later turn in Llama 2 ("<s>")
  // The template reads `enable_thinking` and writes think blocks (Qwen3's):
  // ChatOptions can turn the model's reasoning off.
  bool thinking_switch = false;
  // How an assistant turn is written: as its content; or (Qwen3's family,
  // which reads each turn as a think block and an answer) with the block
  // written again only after the last query, on the final turn or where it
  // has reasoning (Qwen3's, Qwen3-Thinking-2507's), or only where it has
  // reasoning (Qwen3-Instruct-2507's); or as its answer alone, the text
  // after its last "</think>" (QwQ's).
  enum class PastThinking : uint8_t { kNone, kFinalOrReasoned, kReasoned, kAnswerOnly };
  PastThinking past_thinking = PastThinking::kNone;
  // Mistral's [INST] turns as its template spells them (ChatFormat::kMistral):
  // v0.1's by default.
  struct Inst {
    std::string open = "[INST] ";
    std::string close = " [/INST]";
    std::string answer_prefix;         // " " in v0.2 and later
    bool trims_answers = false;        // v0.3's
    bool system_on_last_user = false;  // v0.2 and later; v0.1: the first
    bool system_when_given = false;    // written even when empty (a template that reads one)
  };
  Inst inst;
  // Llama 3.1's and later: a system turn always comes first, dating the
  // model's knowledge (December 2023) and today; `dated_today`: today is the
  // server's date (3.2's strftime_now), else the template's 26 Jul 2024.
  bool llama31_system = false;
  bool dated_today = false;
  // The generation prompt opens the think block itself (DeepSeek-R1's ends
  // "<｜Assistant｜><think>\n", Qwen3-Thinking-2507's and QwQ's
  // "<|im_start|>assistant\n<think>\n"): the model's output starts inside it.
  bool opens_think_block = false;
  // The template offers tools and takes their results as Qwen2.5's and
  // Qwen3's do, known by their wording (Hermes' format: the functions in
  // <tools> in the system turn, calls in <tool_call>, results in
  // <tool_response>; chat_tools.h). Look-alikes (QwQ's, Qwen3-Coder's) are
  // not taken for it.
  bool hermes_tools = false;
  // With tools, the system turn is Qwen2.5's: the system message, or the
  // default (QwQ's is empty), then a blank line, always; Qwen3's has the
  // message and its blank line only where one is given.
  bool tools_system_always = false;
  // The model writes a leading think block (Qwen3's, Qwen3-Thinking-2507's,
  // DeepSeek-R1's): its output may start with reasoning (ReasoningSplitter).
  bool writes_think_blocks() const { return thinking_switch || opens_think_block; }
};

// How a chat is formatted beyond its messages.
struct ChatOptions {
  // End with the opening of the assistant's turn, for the model to write.
  bool add_generation_prompt = true;
  // The template variable `enable_thinking` (vLLM's chat_template_kwargs):
  // false opens the assistant's turn with an empty think block, as Qwen3's
  // template does, so that the model answers without reasoning first. Only
  // where the template reads it (ChatTemplate::thinking_switch), as a
  // template ignores variables it does not use; nullopt: its default.
  std::optional<bool> enable_thinking = std::nullopt;
  // The template variable `date_string` (Llama 3.1's and later's "Today
  // Date"); nullopt: the template's default.
  std::optional<std::string> date_string = std::nullopt;
  // The template variable `tools`: the functions the model may call, where
  // the template offers them (ChatTemplate::hermes_tools; see
  // CheckToolsServed).
  std::vector<ChatTool> tools = {};
};

// Picks the format from the template source. NOT_FOUND for an empty source,
// UNIMPLEMENTED for a template whose format is not one of the above.
// `bos_token`/`eos_token`: the model's token texts; `adds_bos`: the tokenizer
// prepends BOS itself, so the template's leading bos_token is left out.
absl::StatusOr<ChatTemplate> ParseChatTemplate(std::string_view source, std::string_view bos_token,
                                               std::string_view eos_token, bool adds_bos);

// FAILED_PRECONDITION where `messages` or `options` ask for tools (tools
// offered, an assistant's tool calls, a tool's result) and the template has no tool calling
// cohost knows (ChatTemplate::hermes_tools).
absl::Status CheckToolsServed(const ChatTemplate& chat_template,
                              absl::Span<const ChatMessage> messages, const ChatOptions& options);

// Bytes [begin, end) of a formatted chat that came from a message.
struct TextSpan {
  size_t begin = 0, end = 0;
};

// `message_spans`, when given, receives where the text a client wrote lies in
// the result (ascending, disjoint, none empty): messages' roles (where the
// template writes the role given, not a fixed one) and contents, tools, and
// calls' names and arguments, in which spellings of control tokens are not
// to become those tokens (Tokenizer::EncodeChat).
std::string FormatChat(const ChatTemplate& chat_template, absl::Span<const ChatMessage> messages,
                       const ChatOptions& options = {},
                       std::vector<TextSpan>* message_spans = nullptr);

}  // namespace cohost::runtime
