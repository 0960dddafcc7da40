#include "runtime/tokenizer/chat_template.h"

#include <ctime>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "runtime/tokenizer/chat_tools.h"
#include "runtime/tokenizer/reasoning_split.h"
#include "runtime/tokenizer/string_view_compat.h"

namespace cohost::runtime {
namespace {

constexpr absl::string_view kImStart = "<|im_start|>";
constexpr absl::string_view kImEnd = "<|im_end|>";

// A ChatML template that writes a system turn as one literal string (the
// default used when the conversation has none) has it as
// '<|im_start|>system\n<text><|im_end|>' in its source. Occurrences that build
// the turn from a message (quotes, '+', Jinja braces in between) are skipped.
// Linear in the source, which a model file may make megabytes of markers
// without an end: the turn's end is searched only past the last one found,
// and a candidate with another marker before its end is skipped unread, so
// the texts read are disjoint.
std::string FindDefaultSystem(absl::string_view source) {
  const std::string marker = absl::StrCat(kImStart, "system");
  size_t end = 0;  // the first kImEnd at or after the candidate's text (npos: none)
  for (size_t at = source.find(marker); at != absl::string_view::npos;) {
    const size_t next = source.find(marker, at + 1);
    size_t start = at + marker.size();
    const absl::string_view rest = source.substr(start);
    if (absl::StartsWith(rest, "\n")) {
      start += 1;
    } else if (absl::StartsWith(rest, "\\n")) {
      start += 2;
    } else {
      at = next;
      continue;
    }
    if (end != absl::string_view::npos && end < start) end = source.find(kImEnd, start);
    if (end == absl::string_view::npos) return "";  // no turn ends past here
    if (next == absl::string_view::npos || next > end) {
      const absl::string_view text = source.substr(start, end - start);
      if (!text.empty() && text.find_first_of("'\"{}+") == absl::string_view::npos) {
        return absl::StrReplaceAll(text, {{"\\n", "\n"}});
      }
    }
    at = next;
  }
  return "";
}

// Whether a ChatML template offers tools exactly as Qwen2.5's or Qwen3's
// does (chat_tools.h), by their own wording: the prompt's sentence, a call
// written field by field, results in <tool_response>; then Qwen3's system
// rule (the message and a blank line) or Qwen2.5's (a default system
// message, the blank line in the header: `qwen25_layout`). Others that look
// alike (Qwen3-Coder's XML calls, Hermes 2 Pro's, a think handling not
// Qwen3's) differ in ways not written here.
bool OffersQwenTools(absl::string_view source, absl::string_view default_system,
                     ChatTemplate::PastThinking past_thinking, bool qwen25_layout) {
  if (!absl::StrContains(source,
                         "You may call one or more functions to assist with the user "
                         "query.") ||
      !absl::StrContains(source, R"(<tool_call>\n{"name": "')") ||
      !absl::StrContains(source, "<tool_response>") ||
      !absl::StrContains(source, "tool | tojson")) {
    return false;
  }
  // A template that handles think blocks otherwise than Qwen3's family is
  // not written here.
  const bool qwen3 = absl::StrContains(source, R"(messages[0].content + '\n\n')") &&
                     (past_thinking == ChatTemplate::PastThinking::kFinalOrReasoned ||
                      past_thinking == ChatTemplate::PastThinking::kReasoned ||
                      !absl::StrContains(source, "</think>"));
  // Qwen2.5's layout, with its default system message; QwQ's, with its
  // empty one written out (a default cohost could not read would be lost),
  // known by its think rule.
  const bool qwq = past_thinking == ChatTemplate::PastThinking::kAnswerOnly &&
                   absl::StrContains(source, "{{- '' }}");
  const bool qwen25 = qwen25_layout && (!default_system.empty() || qwq);
  return qwen3 || qwen25;
}

// Where formatted text is written, and where the messages' text (roles and
// contents) went.
struct ChatOut {
  std::string* text;
  std::vector<TextSpan>* spans;  // may be null

  void Content(absl::string_view content) const {
    if (spans != nullptr && !content.empty()) {
      spans->push_back({text->size(), text->size() + content.size()});
    }
    text->append(content.data(), content.size());
  }
};

// Qwen2.5's and Qwen3's system turn with tools (chat_tools.h): the system
// message's text (or the default) and a blank line, then the tools, one
// JSON line each.
void ToolsSystemTurn(const ChatTemplate& t, absl::Span<const ChatMessage> messages,
                     const ChatOptions& options, const ChatOut& chat) {
  std::string* out = chat.text;
  absl::StrAppend(out, kImStart, "system\n");
  // A system message (even an empty one), else Qwen2.5's default (QwQ's
  // empty one), and a blank line; Qwen3 has no default.
  const bool given = !messages.empty() && messages[0].role == "system";
  if (given || t.tools_system_always) {
    chat.Content(given ? AsAbsl(messages[0].content) : t.default_system);
    out->append("\n\n");
  }
  out->append(kToolsHeader.data(), kToolsHeader.size());
  for (const ChatTool& tool : options.tools) {
    out->append("\n");
    chat.Content(ToolJson(tool));
  }
  absl::StrAppend(out, AsAbsl(kToolsFooter), kImEnd, "\n");
}

// Where Qwen3's template takes the last query to be: its last user message
// that is not a tool's result wrapped in <tool_response>, else the last
// message.
size_t LastQuery(absl::Span<const ChatMessage> messages) {
  for (size_t i = messages.size(); i-- > 0;) {
    const absl::string_view c = messages[i].content;
    if (messages[i].role == "user" &&
        !(absl::StartsWith(c, "<tool_response>") && absl::EndsWith(c, "</tool_response>"))) {
      return i;
    }
  }
  return messages.empty() ? 0 : messages.size() - 1;
}

// An assistant turn as Qwen3's template reads it: the reasoning before its
// first "</think>" (after the last "<think>" there, newlines trimmed), the
// answer after its last "</think>" (leading newlines trimmed); without a
// "</think>", no reasoning and all of it the answer.
struct ThinkSplit {
  absl::string_view reasoning;
  absl::string_view answer;
};

// `text` without its leading newlines (Python's lstrip('\n')).
absl::string_view LstripNewlines(absl::string_view text) {
  while (absl::ConsumePrefix(&text, "\n")) {
  }
  return text;
}

// `text` without its leading and trailing newlines (Python's strip('\n')).
absl::string_view StripNewlines(absl::string_view text) {
  text = LstripNewlines(text);
  while (absl::ConsumeSuffix(&text, "\n")) {
  }
  return text;
}

// What follows an assistant turn's last "</think>" (all of it without one):
// the answer the reasoning templates keep of a past turn.
absl::string_view AfterLastThink(absl::string_view content) {
  const size_t close = content.rfind(AsAbsl(kThinkClose));
  return close == absl::string_view::npos ? content : content.substr(close + kThinkClose.size());
}

ThinkSplit SplitThink(absl::string_view content) {
  const size_t first_close = content.find(AsAbsl(kThinkClose));
  if (first_close == absl::string_view::npos) return {"", content};
  absl::string_view reasoning = content.substr(0, first_close);
  if (const size_t open = reasoning.rfind(AsAbsl(kThinkOpen)); open != absl::string_view::npos) {
    reasoning.remove_prefix(open + kThinkOpen.size());
  }
  return {StripNewlines(reasoning), LstripNewlines(AfterLastThink(content))};
}

// An assistant turn's calls, after its content: each a <tool_call> block, on
// a line of its own after any content.
void ToolCalls(const ChatMessage& m, absl::string_view content, const ChatOut& chat) {
  for (size_t i = 0; i < m.tool_calls.size(); ++i) {
    if (i > 0 || !content.empty()) chat.text->append("\n");
    chat.text->append("<tool_call>\n{\"name\": \"");
    chat.Content(m.tool_calls[i].name);
    chat.text->append("\", \"arguments\": ");
    // As vLLM passes them: parsed, then written by the template's tojson.
    chat.Content(PythonJson(m.tool_calls[i].arguments));
    chat.text->append("}\n</tool_call>");
  }
}

void FormatChatMl(const ChatTemplate& t, absl::Span<const ChatMessage> messages,
                  const ChatOptions& options, const ChatOut& chat) {
  std::string* out = chat.text;
  auto turn = [&](absl::string_view role, absl::string_view content) {
    out->append(kImStart.data(), kImStart.size());
    chat.Content(role);
    out->append("\n");
    chat.Content(content);
    absl::StrAppend(out, kImEnd, "\n");
  };
  const bool tools = t.hermes_tools && !options.tools.empty();
  if (tools) {
    ToolsSystemTurn(t, messages, options, chat);
    if (!messages.empty() && messages[0].role == "system") messages.remove_prefix(1);
  } else if (!t.default_system.empty() && !messages.empty() && messages[0].role != "system") {
    turn("system", t.default_system);
  }
  const size_t last_query = LastQuery(messages);
  for (size_t i = 0; i < messages.size(); ++i) {
    absl::string_view content = messages[i].content;
    if (t.past_thinking == ChatTemplate::PastThinking::kAnswerOnly &&
        messages[i].role == "assistant") {
      // QwQ's template writes each turn as its answer alone: the text after
      // its last "</think>", leading newlines stripped.
      const absl::string_view answer = LstripNewlines(AfterLastThink(content));
      if (!t.hermes_tools || messages[i].tool_calls.empty()) {
        turn("assistant", answer);
        continue;
      }
      // Qwen2.5's layout: the answer on a line of its own where the turn had
      // content, then each call on one.
      absl::StrAppend(out, kImStart, "assistant");
      if (!content.empty()) {
        out->append("\n");
        chat.Content(answer);
      }
      out->append("\n");
      ToolCalls(messages[i], /*content=*/"", chat);
      absl::StrAppend(out, kImEnd, "\n");
      continue;
    }
    if ((t.past_thinking == ChatTemplate::PastThinking::kFinalOrReasoned ||
         t.past_thinking == ChatTemplate::PastThinking::kReasoned) &&
        messages[i].role == "assistant") {
      // Qwen3's template reads the turn as a think block and an answer (or
      // takes the reasoning given apart, and the content whole); it writes
      // the block again only after the last query, on the final turn or
      // where it has reasoning.
      const std::optional<std::string>& given = messages[i].reasoning;
      const ThinkSplit split =
          given ? ThinkSplit{StripNewlines(*given), content} : SplitThink(content);
      const bool reasoned = given ? !given->empty() : !split.reasoning.empty();
      const bool final_turn = t.past_thinking == ChatTemplate::PastThinking::kFinalOrReasoned &&
                              i + 1 == messages.size();
      const bool think = i > last_query && (final_turn || reasoned);
      absl::StrAppend(out, kImStart, "assistant\n");
      if (think) {
        out->append("<think>\n");
        chat.Content(split.reasoning);
        out->append("\n</think>\n\n");
      }
      // After a rewritten block the answer loses its leading newlines even
      // without a "</think>"; whether a call starts a line reads it before.
      chat.Content(think ? LstripNewlines(split.answer) : split.answer);
      if (t.hermes_tools) ToolCalls(messages[i], split.answer, chat);
      absl::StrAppend(out, kImEnd, "\n");
      continue;
    }
    if (t.hermes_tools && messages[i].role == "tool") {
      // Consecutive results share one user turn.
      if (i == 0 || messages[i - 1].role != "tool") absl::StrAppend(out, kImStart, "user");
      out->append("\n<tool_response>\n");
      chat.Content(content);
      out->append("\n</tool_response>");
      if (i + 1 == messages.size() || messages[i + 1].role != "tool") {
        absl::StrAppend(out, kImEnd, "\n");
      }
    } else if (t.hermes_tools && !messages[i].tool_calls.empty()) {
      absl::StrAppend(out, kImStart, "assistant\n");
      chat.Content(content);
      ToolCalls(messages[i], content, chat);
      absl::StrAppend(out, kImEnd, "\n");
    } else {
      turn(messages[i].role, content);
    }
  }
  if (!options.add_generation_prompt) return;
  absl::StrAppend(out, kImStart, "assistant\n");
  // Qwen3's template: thinking off opens the answer with an empty think block.
  if (t.thinking_switch && options.enable_thinking == false) {
    out->append("<think>\n\n</think>\n\n");
  } else if (t.opens_think_block) {
    out->append("<think>\n");
  }
}

// What Jinja's `trim` (Python's str.strip()) takes off: ASCII whitespace,
// the separators \x1c-\x1f, and Unicode's white space (U+0085, U+00A0,
// U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).
size_t PythonSpaceAt(absl::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)) return 1;
  auto byte = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
  if (c == 0xC2 && (byte(1) == 0x85 || byte(1) == 0xA0)) return 2;
  if (c == 0xE1 && byte(1) == 0x9A && byte(2) == 0x80) return 3;  // U+1680
  if (c == 0xE2 && byte(1) == 0x80 &&
      (byte(2) <= 0x8A || byte(2) == 0xA8 || byte(2) == 0xA9 || byte(2) == 0xAF)) {
    return byte(2) >= 0x80 ? 3 : 0;  // U+2000-U+200A, U+2028, U+2029, U+202F
  }
  if (c == 0xE2 && byte(1) == 0x81 && byte(2) == 0x9F) return 3;  // U+205F
  if (c == 0xE3 && byte(1) == 0x80 && byte(2) == 0x80) return 3;  // U+3000
  return 0;
}

absl::string_view PythonStrip(absl::string_view s) {
  for (size_t n; !s.empty() && (n = PythonSpaceAt(s, 0)) > 0;) s.remove_prefix(n);
  // From the end: a space's last byte ends it; try each length it may have.
  for (bool cut = true; cut && !s.empty();) {
    cut = false;
    for (size_t n = 1; n <= 3 && n <= s.size(); ++n) {
      if (PythonSpaceAt(s, s.size() - n) == n) {
        s.remove_suffix(n);
        cut = true;
        break;
      }
    }
  }
  return s;
}

// Today as Llama 3.2's template writes it through transformers'
// strftime_now("%d %b %Y"): the server's local date.
std::string TodayForTemplate() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  const size_t n = std::strftime(text, sizeof text, "%d %b %Y", &local);
  return std::string(text, n);
}

// Llama 3.0's turns; 3.1 and later (`llama31_system`) always open with a
// system turn that dates the model's knowledge and today, the conversation's
// first system message after it.
void FormatLlama3(const ChatTemplate& t, absl::Span<const ChatMessage> messages,
                  const ChatOptions& options, const ChatOut& chat) {
  std::string* out = chat.text;
  if (t.llama31_system) {
    absl::string_view system;
    if (!messages.empty() && messages[0].role == "system") {
      system = PythonStrip(messages[0].content);
      messages.remove_prefix(1);
    }
    const std::string today = options.date_string ? *options.date_string
                              : t.dated_today     ? TodayForTemplate()
                                                  : std::string("26 Jul 2024");
    absl::StrAppend(out,
                    "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                    "December 2023\nToday Date: ",
                    today, "\n\n");
    chat.Content(system);
    out->append("<|eot_id|>");
  }
  for (const ChatMessage& m : messages) {
    out->append("<|start_header_id|>");
    chat.Content(m.role);
    out->append("<|end_header_id|>\n\n");
    chat.Content(PythonStrip(m.content));
    absl::StrAppend(out, "<|eot_id|>");
  }
  if (options.add_generation_prompt)
    absl::StrAppend(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// Llama 2 puts the system prompt inside the first user turn, in <<SYS>>
// markers, every turn after the first opening with BOS text.
void FormatLlama2(const ChatTemplate& t, absl::Span<const ChatMessage> messages,
                  const ChatOut& chat) {
  std::string* out = chat.text;
  std::string system;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    messages.remove_prefix(1);
  }
  bool first_user = true;
  for (const ChatMessage& m : messages) {
    if (m.role == "assistant") {
      out->append(" ");
      chat.Content(PythonStrip(m.content));
      absl::StrAppend(out, " ", t.eos_text);
      continue;
    }
    std::string content = m.content;
    if (first_user && !system.empty()) {
      content = absl::StrCat("<<SYS>>\n", system, "\n<</SYS>>\n\n", content);
    }
    // The system prompt's <<SYS>> markers are plain text, so the whole
    // turn's text counts as content.
    if (!first_user) out->append(t.bos_turn_text);
    out->append("[INST] ");
    chat.Content(PythonStrip(content));
    out->append(" [/INST]");
    first_user = false;
  }
}

// Mistral's [INST] turns, in the spelling its template gives them
// (ChatTemplate::inst). Mistral has no system role: v0.1's templates put the
// system message before the first user message (the first one wrote none:
// cohost puts a non-empty one there), v0.2's and later before the last one
// (and nowhere when the conversation ends with an answer; later system
// messages are dropped).
void FormatMistral(const ChatTemplate& t, absl::Span<const ChatMessage> messages,
                   const ChatOut& chat) {
  const ChatTemplate::Inst& inst = t.inst;
  std::string* out = chat.text;
  std::optional<std::string> system;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    messages.remove_prefix(1);
  }
  bool first_user = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "assistant") {
      out->append(inst.answer_prefix);
      chat.Content(inst.trims_answers ? PythonStrip(m.content) : absl::string_view(m.content));
      out->append(t.eos_text);
      continue;
    }
    if (m.role == "system" && inst.system_when_given) continue;
    out->append(inst.open);
    const bool system_here =
        system.has_value() &&
        (inst.system_on_last_user ? i + 1 == messages.size()
                                  : first_user && (inst.system_when_given || !system->empty()));
    if (system_here) {
      chat.Content(*system);
      out->append("\n\n");
    }
    chat.Content(m.content);
    out->append(inst.close);
    first_user = false;
  }
}

// DeepSeek-R1's: the system messages' text first (the last one's: its
// template keeps overwriting one variable), then each turn after its marker.
// An assistant turn keeps only what follows its last "</think>" (its
// reasoning is not sent back); tool outputs are wrapped in their markers;
// other roles write nothing, as in the template.
void FormatDeepSeek(const ChatTemplate& t, absl::Span<const ChatMessage> messages,
                    const ChatOptions& options, const ChatOut& chat) {
  constexpr absl::string_view kUser = "<｜User｜>", kAssistant = "<｜Assistant｜>",
                              kEnd = "<｜end▁of▁sentence｜>",
                              kOutputsBegin = "<｜tool▁outputs▁begin｜>",
                              kOutputsEnd = "<｜tool▁outputs▁end｜>",
                              kOutputBegin = "<｜tool▁output▁begin｜>",
                              kOutputEnd = "<｜tool▁output▁end｜>";
  std::string* out = chat.text;
  const ChatMessage* system = nullptr;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") system = &m;
  }
  if (system != nullptr) chat.Content(system->content);
  bool in_tool = false, first_output = true;
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      in_tool = false;
      out->append(kUser.data(), kUser.size());
      chat.Content(m.content);
    } else if (m.role == "assistant") {
      if (in_tool) {
        out->append(kOutputsEnd.data(), kOutputsEnd.size());
        in_tool = false;
        chat.Content(m.content);
      } else {
        out->append(kAssistant.data(), kAssistant.size());
        chat.Content(AfterLastThink(m.content));
      }
      out->append(kEnd.data(), kEnd.size());
    } else if (m.role == "tool") {
      in_tool = true;
      if (first_output) {
        out->append(kOutputsBegin.data(), kOutputsBegin.size());
        first_output = false;
      } else {
        out->append("\n");
      }
      out->append(kOutputBegin.data(), kOutputBegin.size());
      chat.Content(m.content);
      out->append(kOutputEnd.data(), kOutputEnd.size());
    }
  }
  if (in_tool) out->append(kOutputsEnd.data(), kOutputsEnd.size());
  if (options.add_generation_prompt && !in_tool) {
    out->append(kAssistant.data(), kAssistant.size());
    if (t.opens_think_block) out->append("<think>\n");
  }
}

// Whether `source` holds `text` as a Jinja string literal, in either quote.
bool HasLiteral(absl::string_view source, absl::string_view text) {
  return absl::StrContains(source, absl::StrCat("'", text, "'")) ||
         absl::StrContains(source, absl::StrCat("\"", text, "\""));
}

// Mistral's templates differ in their spaces: v0.1's first one writes
// "[INST] " and " [/INST]", its later one (and Mixtral's) " [INST] ",
// " [/INST]" and " " before each answer, v0.2 and v0.3 "[INST] " and
// "[/INST]" with " " before each answer (v0.3's trimmed), Nemo's "[INST]"
// and "[/INST]".
ChatTemplate::Inst ReadInstSpelling(absl::string_view source) {
  ChatTemplate::Inst inst;
  if (HasLiteral(source, " [INST] ")) {
    inst.open = " [INST] ";
  } else if (!HasLiteral(source, "[INST] ") && HasLiteral(source, "[INST]")) {
    inst.open = "[INST]";
  }
  if (!HasLiteral(source, " [/INST]") && HasLiteral(source, "[/INST]")) inst.close = "[/INST]";
  for (const char* q : {"'", "\""}) {
    const std::string content = absl::StrCat("message[", q, "content", q, "]");
    if (absl::StrContains(source, absl::StrCat(q, " ", q, " + ", content)))
      inst.answer_prefix = " ";
    if (absl::StrContains(source, absl::StrCat(content, "|trim")) ||
        absl::StrContains(source, absl::StrCat(content, " | trim"))) {
      inst.trims_answers = true;
    }
  }
  inst.system_when_given = absl::StrContains(source, "system_message is defined");
  inst.system_on_last_user = absl::StrContains(source, "loop.last and system_message is defined");
  return inst;
}

}  // namespace

absl::StatusOr<ChatTemplate> ParseChatTemplate(std::string_view source_view,
                                               std::string_view bos_token,
                                               std::string_view eos_token, bool adds_bos) {
  const absl::string_view source = AsAbsl(source_view);
  if (source.empty()) return absl::NotFoundError("the model has no chat template");
  ChatTemplate t;
  if (absl::StrContains(source, kImStart)) {
    t.format = ChatFormat::kChatMl;
    t.default_system = FindDefaultSystem(source);
    // Qwen3's own wording: the variable, and the empty block it writes.
    t.thinking_switch = absl::StrContains(source, "enable_thinking") &&
                        absl::StrContains(source, "<think>") &&
                        absl::StrContains(source, "</think>");
    // Qwen3's family's wording: each assistant turn read as a block (or
    // reasoning_content) and an answer, the block written after the last query.
    if (absl::StrContains(source, "reasoning_content") &&
        absl::StrContains(source, "last_query_index") && absl::StrContains(source, "</think>")) {
      // Qwen3's rule unless worded as Instruct-2507's (which has no switch).
      const bool final_turn =
          t.thinking_switch ||
          absl::StrContains(source, "loop.last or (not loop.last and reasoning_content)");
      t.past_thinking = final_turn ? ChatTemplate::PastThinking::kFinalOrReasoned
                                   : ChatTemplate::PastThinking::kReasoned;
    } else if (t.thinking_switch) {
      t.past_thinking = ChatTemplate::PastThinking::kFinalOrReasoned;  // Qwen3's rule
    } else if (absl::StrContains(source, "split('</think>')[-1]")) {
      t.past_thinking = ChatTemplate::PastThinking::kAnswerOnly;  // QwQ's
    }
    // Qwen3-Thinking-2507's (and QwQ's) generation prompt opens the block
    // ('\n' escaped in JSON, raw in a GGUF's string). One that opens it only
    // as its switch says (Nemotron's) is not written here: the switch's
    // closed block, or none, is.
    t.opens_think_block =
        !t.thinking_switch && (HasLiteral(source, "<|im_start|>assistant\\n<think>\\n") ||
                               HasLiteral(source, "<|im_start|>assistant\n<think>\n"));
    t.tools_system_always = absl::StrContains(source, R"("\n\n# Tools\n\nYou may call)");
    t.hermes_tools =
        OffersQwenTools(source, t.default_system, t.past_thinking, t.tools_system_always);
  } else if (absl::StrContains(source, "<|start_header_id|>")) {
    t.format = ChatFormat::kLlama3;
    t.llama31_system = absl::StrContains(source, "Cutting Knowledge Date");
    t.dated_today = t.llama31_system && absl::StrContains(source, "strftime_now");
  } else if (absl::StrContains(source, "<<SYS>>")) {
    t.format = ChatFormat::kLlama2;
  } else if (absl::StrContains(source, "[INST]")) {
    t.format = ChatFormat::kMistral;
    t.inst = ReadInstSpelling(source);
  } else if (absl::StrContains(source, "<｜User｜>") &&
             absl::StrContains(source, "<｜Assistant｜>")) {
    t.format = ChatFormat::kDeepSeek;
    // The January 2025 revision of R1's template opens the block in the
    // generation prompt ('\n' escaped in JSON, raw in a GGUF's string).
    t.opens_think_block = absl::StrContains(source, "<｜Assistant｜><think>\\n") ||
                          absl::StrContains(source, "<｜Assistant｜><think>\n");
  } else {
    return absl::UnimplementedError(
        "unsupported chat template (known: ChatML, Llama 3, Llama 2, Mistral [INST], DeepSeek-R1)");
  }
  if (!adds_bos && absl::StrContains(source, "bos_token")) t.bos_text = std::string(bos_token);
  t.eos_text = std::string(eos_token);
  t.bos_turn_text = std::string(bos_token);
  return t;
}

absl::Status CheckToolsServed(const ChatTemplate& t, absl::Span<const ChatMessage> messages,
                              const ChatOptions& options) {
  if (t.hermes_tools) return absl::OkStatus();
  bool calls = !options.tools.empty();
  for (const ChatMessage& m : messages) calls = calls || !m.tool_calls.empty() || m.role == "tool";
  if (!calls) return absl::OkStatus();
  return absl::FailedPreconditionError(
      "this model's chat template has no tool calling cohost knows (Qwen2.5's and Qwen3's "
      "<tool_call> format)");
}

std::string FormatChat(const ChatTemplate& t, absl::Span<const ChatMessage> messages,
                       const ChatOptions& options, std::vector<TextSpan>* message_spans) {
  std::string out = t.bos_text;
  if (message_spans != nullptr) message_spans->clear();
  const ChatOut chat{&out, message_spans};
  switch (t.format) {
    case ChatFormat::kChatMl:
      FormatChatMl(t, messages, options, chat);
      break;
    case ChatFormat::kLlama3:
      FormatLlama3(t, messages, options, chat);
      break;
    case ChatFormat::kLlama2:
      FormatLlama2(t, messages, chat);
      break;
    case ChatFormat::kMistral:
      FormatMistral(t, messages, chat);
      break;
    case ChatFormat::kDeepSeek:
      FormatDeepSeek(t, messages, options, chat);
      break;
  }
  return out;
}

}  // namespace cohost::runtime
