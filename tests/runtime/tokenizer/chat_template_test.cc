// Chat formats picked from template sources (not a Jinja engine): ChatML with
// SmolLM2's default system message, Llama 3, Llama 2, Mistral, and errors.
#include "runtime/tokenizer/chat_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/chat_tools.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cohost::runtime {
namespace {

// SmolLM2-135M-Instruct's template, as stored in its GGUF.
constexpr char kSmolLm2Template[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}";

// Plain ChatML with no default system message (escaped newlines, as in JSON).
constexpr char kChatMlTemplate[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";

constexpr char kLlama3Template[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}";

constexpr char kLlama2Template[] =
    "{% if messages[0]['role'] == 'system' %}... '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' ... {{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}";

constexpr char kMistralTemplate[] =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + "
    "eos_token}}{% endif %}{% endfor %}";

std::string Format(std::string_view source, std::vector<ChatMessage> messages, bool gen = true,
                   bool adds_bos = true) {
  auto t = ParseChatTemplate(source, "<s>", "</s>", adds_bos);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? FormatChat(*t, messages, {.add_generation_prompt = gen}) : "";
}

// Each format reports where the messages' roles and contents went: exactly
// their (trimmed, where the format trims) text, in order, and nothing of its
// own markers. The [INST] formats write no roles.
TEST(ChatTemplateTest, ContentSpansCoverTheMessagesTextOnly) {
  const std::vector<ChatMessage> messages = {
      {"system", "Sys"}, {"user", " Q1 "}, {"assistant", "A1"}, {"user", "Q2"}};
  struct Case {
    const char* source;
    std::vector<std::string> want;
  };
  for (const Case& c : {
           Case{kChatMlTemplate,
                {"system", "Sys", "user", " Q1 ", "assistant", "A1", "user", "Q2"}},
           Case{kLlama3Template, {"system", "Sys", "user", "Q1", "assistant", "A1", "user", "Q2"}},
           // Llama 2 folds the system prompt (with its plain-text <<SYS>>
           // markers) into the first user turn.
           Case{kLlama2Template, {"<<SYS>>\nSys\n<</SYS>>\n\n Q1", "A1", "Q2"}},
           Case{kMistralTemplate, {"Sys", " Q1 ", "A1", "Q2"}},
       }) {
    auto t = ParseChatTemplate(c.source, "<s>", "</s>", /*adds_bos=*/true);
    ASSERT_TRUE(t.ok()) << t.status();
    std::vector<TextSpan> spans;
    const std::string text = FormatChat(*t, messages, {}, &spans);
    EXPECT_EQ(text, FormatChat(*t, messages)) << "the spans change nothing";
    std::vector<std::string> got;
    for (size_t i = 0; i < spans.size(); ++i) {
      ASSERT_LE(spans[i].end, text.size());
      if (i > 0) {
        EXPECT_GE(spans[i].begin, spans[i - 1].end) << "ascending, disjoint";
      }
      got.push_back(text.substr(spans[i].begin, spans[i].end - spans[i].begin));
    }
    EXPECT_EQ(got, c.want) << text;
  }
}

TEST(ChatTemplateTest, SmolLm2InsertsItsDefaultSystemMessage) {
  auto t = ParseChatTemplate(kSmolLm2Template, "<|im_start|>", "<|im_end|>", false);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->format, ChatFormat::kChatMl);
  EXPECT_EQ(t->default_system,
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  EXPECT_EQ(FormatChat(*t, {{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // A given system message replaces the default; no generation prompt.
  EXPECT_EQ(FormatChat(*t, {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Yo"}},
                       {.add_generation_prompt = false}),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nYo<|im_end|>\n");
}

// Qwen3's template reads enable_thinking: false opens the answer with an
// empty think block. A template that does not read it ignores it, as Jinja
// ignores a variable a template never uses. Qwen3's also drops earlier
// answers' reasoning.
TEST(ChatTemplateTest, Qwen3sThinkingSwitch) {
  constexpr char kQwen3Like[] =
      "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + "
      "message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}"
      "{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is defined and enable_thinking "
      "is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}";
  auto t = ParseChatTemplate(kQwen3Like, "", "<|im_end|>", false);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->thinking_switch);
  const std::string head = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(FormatChat(*t, {{"user", "Hi"}}), head);
  EXPECT_EQ(FormatChat(*t, {{"user", "Hi"}}, {.enable_thinking = true}), head);
  EXPECT_EQ(FormatChat(*t, {{"user", "Hi"}}, {.enable_thinking = false}),
            head + "<think>\n\n</think>\n\n");
  EXPECT_EQ(
      FormatChat(*t, {{"user", "Hi"}}, {.add_generation_prompt = false, .enable_thinking = false}),
      "<|im_start|>user\nHi<|im_end|>\n");
  // Earlier answers lose their reasoning, as the template drops it; an
  // answer after the last user turn (a continuation) keeps it.
  EXPECT_EQ(FormatChat(*t,
                       {{"user", "Hi"},
                        {"assistant", "<think>\nsay hi\n</think>\n\nHello"},
                        {"user", "Bye"},
                        {"assistant", "<think>\nx\n</think>\n\nBy"}},
                       {.add_generation_prompt = false}),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
            "<|im_start|>user\nBye<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nx\n</think>\n\nBy<|im_end|>\n");
  auto plain = ParseChatTemplate(kChatMlTemplate, "<s>", "</s>", true);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->thinking_switch);
  EXPECT_EQ(FormatChat(*plain, {{"user", "Hi"}, {"assistant", "<think>a</think>b"}, {"user", "c"}}),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>a</think>b<|im_end|>\n"
            "<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n")
      << "another template keeps what it is given";
  // The variable alone (a template of another family's convention) is not Qwen3's switch.
  auto other = ParseChatTemplate(
      "<|im_start|>{% if enable_thinking %}/think{% else %}/no_think{% endif %}", "", "", true);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->thinking_switch);
  EXPECT_EQ(FormatChat(*plain, {{"user", "Hi"}}, {.enable_thinking = false}),
            FormatChat(*plain, {{"user", "Hi"}}));
}

// Markers without an end (a model file may hold megabytes of them) are no
// default, nor is a turn that holds another marker; the first clean one is.
// (Reading each marker's turn to the end of the source made this quadratic:
// a 1 MB template took 6 s.)
TEST(ChatTemplateTest, DefaultSystemSearchSkipsMarkersWithoutTheirOwnEnd) {
  std::string markers;
  for (int i = 0; i < 200'000; ++i) markers += "<|im_start|>system\n";
  auto none = ParseChatTemplate(markers, "", "", false);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->default_system, "");
  auto nested = ParseChatTemplate(markers + "x<|im_end|>", "", "", false);
  ASSERT_TRUE(nested.ok());
  EXPECT_EQ(nested->default_system, "x") << "only the last marker's turn is one string";
  auto later = ParseChatTemplate(
      "<|im_start|>system\n' + m + '<|im_end|> <|im_start|>system\\nBe kind.<|im_end|>", "", "",
      false);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->default_system, "Be kind.");
}

TEST(ChatTemplateTest, PlainChatMlHasNoDefaultSystem) {
  EXPECT_EQ(Format(kChatMlTemplate, {{"user", "Hi"}}),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, Llama3TrimsContentAndLeavesBosToTheTokenizer) {
  EXPECT_EQ(Format(kLlama3Template, {{"system", "S "}, {"user", "\nHi\n"}}),
            "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // A tokenizer that does not add BOS gets it as text.
  EXPECT_EQ(Format(kLlama3Template, {{"user", "Hi"}}, false, /*adds_bos=*/false),
            "<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST(ChatTemplateTest, Llama2PutsSystemInTheFirstTurn) {
  EXPECT_EQ(Format(kLlama2Template,
                   {{"system", "Sys"}, {"user", "Q1"}, {"assistant", "A1"}, {"user", "Q2"}}),
            "[INST] <<SYS>>\nSys\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST]");
}

TEST(ChatTemplateTest, Mistral) {
  EXPECT_EQ(Format(kMistralTemplate, {{"user", "Q1"}, {"assistant", "A1"}, {"user", "Q2"}}),
            "[INST] Q1 [/INST]A1</s>[INST] Q2 [/INST]");
  EXPECT_EQ(Format(kMistralTemplate, {{"system", "S"}, {"user", "Q"}}), "[INST] S\n\nQ [/INST]");
}

// Tools are written only by a template that offers them (Qwen's <tool_call>
// format); elsewhere tools or an assistant's calls are FAILED_PRECONDITION.
// What a client wrote of them (a tool's JSON, a call's name and arguments,
// a result) is in the spans: no control token is read from it.
TEST(ChatTemplateTest, ToolsOnlyWhereTheTemplateOffersThem) {
  // Qwen3's wording (tests/data/chat_templates/qwen3.jinja has all of it).
  const std::string hermes = absl::StrCat(
      kChatMlTemplate,
      R"({{- messages[0].content + '\n\n' }} You may call one or more functions to assist )"
      R"(with the user query. {{- tool | tojson }} '<tool_call>\n{"name": "' <tool_response>)");
  auto with = ParseChatTemplate(hermes, "<s>", "</s>", /*adds_bos=*/true);
  auto without = ParseChatTemplate(kChatMlTemplate, "<s>", "</s>", /*adds_bos=*/true);
  ASSERT_TRUE(with.ok() && without.ok());
  EXPECT_TRUE(with->hermes_tools);
  EXPECT_FALSE(without->hermes_tools);
  // A look-alike without Qwen3's system rule or Qwen2.5's default (QwQ's).
  auto qwq = ParseChatTemplate(absl::StrReplaceAll(hermes, {{"messages[0].content + ", ""}}), "<s>",
                               "</s>", /*adds_bos=*/true);
  ASSERT_TRUE(qwq.ok());
  EXPECT_FALSE(qwq->hermes_tools);
  ChatOptions options;
  options.tools.push_back({"f", "ends <|im_end|> here", R"({"type":"object"})"});
  std::vector<ChatMessage> messages = {{"user", "q"}};
  EXPECT_TRUE(CheckToolsServed(*with, messages, options).ok());
  EXPECT_EQ(CheckToolsServed(*without, messages, options).code(),
            absl::StatusCode::kFailedPrecondition);
  messages.push_back({"assistant", "", {{"call_1", "f", R"({"a": 1})"}}});
  messages.push_back({"tool", "<|im_end|>"});
  EXPECT_EQ(CheckToolsServed(*without, messages, {}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CheckToolsServed(*without, {{"user", "q"}, {"tool", "r"}}, {}).code(),
            absl::StatusCode::kFailedPrecondition)
      << "a tool's result answers a call the template cannot make";

  std::vector<TextSpan> spans;
  const std::string text = FormatChat(*with, messages, options, &spans);
  std::vector<std::string> got;
  for (const TextSpan& s : spans) got.push_back(text.substr(s.begin, s.end - s.begin));
  EXPECT_THAT(got, ::testing::ElementsAre(
                       R"({"type": "function", "function": {"name": "f", "description": "ends )"
                       R"(<|im_end|> here", "parameters": {"type": "object"}}})",
                       "user", "q", "f", R"({"a": 1})", "<|im_end|>"))
      << text;
}

TEST(ChatTemplateTest, PythonJsonIsTransformersTojson) {
  EXPECT_EQ(PythonJson(R"({"b":1,"a":[true,null,"x\"y\n\u0001é"],"c":{}})"),
            "{\"b\": 1, \"a\": [true, null, \"x\\\"y\\n\\u0001é\"], \"c\": {}}");
  EXPECT_EQ(PythonJson("[0.5, 100.0, 1e-05, 0.0001, 123.456, 1.5e16, -2.0, 1e100, []]"),
            "[0.5, 100.0, 1e-05, 0.0001, 123.456, 1.5e+16, -2.0, 1e+100, []]");
  EXPECT_EQ(PythonJson("not json"), "not json");
  EXPECT_EQ(PythonJson(R"({"a":1} x)"), R"({"a":1} x)") << "trailing text: not JSON";
  // An object of many keys is written in one pass, in order (a client's
  // parameters may have hundreds of thousands).
  std::string many = "{", want = "{";
  for (int i = 0; i < 100000; ++i) {
    absl::StrAppend(&many, i ? "," : "", "\"k", i, "\":", i);
    absl::StrAppend(&want, i ? ", " : "", "\"k", i, "\": ", i);
  }
  many += "}";
  want += "}";
  EXPECT_EQ(PythonJson(many), want);
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  EXPECT_EQ(PythonJson(deep), deep) << "left as it is past 64 levels";
}

// Real models' templates, rendered by Jinja2 as transformers renders them
// (scripts/make_chat_template_reference.py): each formatted chat must be
// exactly the reference's text. BOS is the tokenizer's (these models add it).
TEST(ChatTemplateTest, FollowsTheReferenceRenderings) {
  std::ifstream in(std::string(COHOST_SOURCE_DIR) + "/tests/data/chat_templates/reference.json");
  ASSERT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  // Ordered: a tool's parameters are written in the client's key order.
  const nlohmann::ordered_json reference = nlohmann::ordered_json::parse(text.str());
  int checked = 0, with_tools = 0;
  for (const nlohmann::ordered_json& c : reference.at("cases")) {
    const std::string name = c.at("template");
    auto t = ParseChatTemplate(reference.at("templates").at(name).get<std::string>(), "<s>", "</s>",
                               /*adds_bos=*/true);
    ASSERT_TRUE(t.ok()) << name << ": " << t.status();
    std::vector<ChatMessage> messages;
    for (const nlohmann::ordered_json& m : c.at("messages")) {
      ChatMessage& message = messages.emplace_back(ChatMessage{m.at("role"), m.at("content")});
      if (m.contains("reasoning_content")) message.reasoning = m.at("reasoning_content");
      for (const nlohmann::ordered_json& call : m.value("tool_calls", nlohmann::ordered_json())) {
        const nlohmann::ordered_json& f = call.at("function");
        message.tool_calls.push_back({call.at("id"), f.at("name"), f.at("arguments")});
      }
    }
    ChatOptions options{.add_generation_prompt = c.at("add_generation_prompt")};
    if (c.contains("enable_thinking"))
      options.enable_thinking = c.at("enable_thinking").get<bool>();
    for (const nlohmann::ordered_json& tool : c.value("tools", nlohmann::ordered_json())) {
      const nlohmann::ordered_json& f = tool.at("function");
      options.tools.push_back({f.at("name"), f.value("description", ""),
                               f.contains("parameters") ? f.at("parameters").dump() : ""});
    }
    with_tools += !options.tools.empty();
    std::vector<TextSpan> spans;
    const std::string formatted = FormatChat(*t, messages, options, &spans);
    EXPECT_EQ(formatted, c.at("text").get<std::string>()) << name << " " << c.at("messages").dump();
    for (const TextSpan& span : spans) EXPECT_LE(span.end, formatted.size());
    ++checked;
  }
  EXPECT_EQ(checked, 117);
  EXPECT_EQ(with_tools, 35);
}

// What each Qwen template is taken for: all offer tools; Qwen3-Thinking-2507's
// output starts inside its think block (the prompt opens it), and
// Qwen3-Instruct-2507's writes none; Qwen2.5's has its default system message.
TEST(ChatTemplateTest, QwensTemplatesAreKnownForWhatTheyDo) {
  std::ifstream in(std::string(COHOST_SOURCE_DIR) + "/tests/data/chat_templates/reference.json");
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json templates = nlohmann::json::parse(text.str()).at("templates");
  auto parse = [&](const char* name) {
    return ParseChatTemplate(templates.at(name).get<std::string>(), "", "<|im_end|>", false)
        .value();
  };
  const ChatTemplate qwen3 = parse("qwen3"), instruct = parse("qwen3_instruct_2507_like"),
                     thinking = parse("qwen3_thinking_2507_like"),
                     qwen25 = parse("qwen2_5_instruct");
  for (const ChatTemplate* t : {&qwen3, &instruct, &thinking, &qwen25}) {
    EXPECT_TRUE(t->hermes_tools);
  }
  EXPECT_TRUE(qwen3.thinking_switch && qwen3.writes_think_blocks() && !qwen3.opens_think_block);
  EXPECT_EQ(qwen3.past_thinking, ChatTemplate::PastThinking::kFinalOrReasoned);
  EXPECT_FALSE(instruct.thinking_switch || instruct.writes_think_blocks());
  EXPECT_EQ(instruct.past_thinking, ChatTemplate::PastThinking::kReasoned);
  EXPECT_TRUE(thinking.opens_think_block && thinking.writes_think_blocks());
  EXPECT_FALSE(thinking.thinking_switch);
  EXPECT_EQ(thinking.past_thinking, ChatTemplate::PastThinking::kFinalOrReasoned);
  EXPECT_EQ(qwen25.past_thinking, ChatTemplate::PastThinking::kNone);
  EXPECT_EQ(qwen25.default_system,
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  EXPECT_FALSE(qwen25.writes_think_blocks());
  const ChatTemplate qwq = parse("qwq_32b");
  EXPECT_TRUE(qwq.hermes_tools && qwq.tools_system_always && qwq.default_system.empty());
  EXPECT_EQ(qwq.past_thinking, ChatTemplate::PastThinking::kAnswerOnly);
  EXPECT_TRUE(qwq.opens_think_block && qwq.writes_think_blocks());
  EXPECT_FALSE(qwen3.tools_system_always);
  // A QwQ fine-tune whose default system message cohost cannot read (it is
  // not a plain literal) is not offered tools: the default would be lost.
  const ChatTemplate fine_tune =
      ParseChatTemplate(absl::StrReplaceAll(templates.at("qwq_32b").get<std::string>(),
                                            {{"{{- '' }}", "{{- 'Box it: \\boxed{}' }}"}}),
                        "", "<|im_end|>", false)
          .value();
  EXPECT_EQ(fine_tune.past_thinking, ChatTemplate::PastThinking::kAnswerOnly);
  EXPECT_FALSE(fine_tune.hermes_tools);
  // A template that opens the block only as its switch says (Nemotron's)
  // is not taken to open it: with thinking off the block is closed.
  const ChatTemplate nemotron =
      ParseChatTemplate(
          "{%- if enable_thinking %}{{- '<|im_start|>assistant\\n<think>\\n' }}"
          "{%- else %}{{- '<|im_start|>assistant\\n<think></think>' }}{%- endif %}",
          "", "<|im_end|>", false)
          .value();
  EXPECT_TRUE(nemotron.thinking_switch);
  EXPECT_FALSE(nemotron.opens_think_block);
}

// Llama 3.2's template dates "Today" by the clock (transformers'
// strftime_now); 3.1's by its fixed default; either takes date_string.
TEST(ChatTemplateTest, Llama31AndLaterDateTheirSystemTurn) {
  constexpr char k31[] =
      "<|start_header_id|>{%- if not date_string is defined %}{%- set date_string = \"26 Jul "
      "2024\" %}{%- endif %}{{- \"Cutting Knowledge Date: December 2023\\n\" }}";
  const std::string k32 = absl::StrReplaceAll(
      k31, {{"set date_string = \"26 Jul 2024\"", "set date_string = strftime_now(\"%d %b %Y\")"}});
  auto t31 = ParseChatTemplate(k31, "", "", true);
  auto t32 = ParseChatTemplate(k32, "", "", true);
  ASSERT_TRUE(t31.ok() && t32.ok());
  EXPECT_TRUE(t31->llama31_system);
  EXPECT_FALSE(t31->dated_today);
  EXPECT_TRUE(t32->dated_today);
  const std::string head =
      "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
      "Today Date: ";
  EXPECT_EQ(
      FormatChat(*t31, {{"user", "Hi"}}, {.add_generation_prompt = false}),
      head + "26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  EXPECT_EQ(
      FormatChat(*t32, {{"user", "Hi"}},
                 {.add_generation_prompt = false, .date_string = "06 Dec 2026"}),
      head + "06 Dec 2026\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  EXPECT_THAT(FormatChat(*t32, {{"user", "Hi"}}),
              ::testing::Not(::testing::HasSubstr("26 Jul 2024")));
  auto t30 = ParseChatTemplate(kLlama3Template, "", "", true);
  ASSERT_TRUE(t30.ok());
  EXPECT_FALSE(t30->llama31_system) << "Llama 3.0 writes no system turn of its own";
}

// DeepSeek-R1's generation prompt opens the think block (its revision since
// January 2025), so the output starts inside it; the earlier one did not.
TEST(ChatTemplateTest, DeepSeekR1OpensTheThinkBlock) {
  constexpr char kOpens[] =
      "{{bos_token}}{{'<｜User｜>' + message['content']}}{{'<｜Assistant｜>' + content}}"
      "{%- if add_generation_prompt and not ns.is_tool -%}{{'<｜Assistant｜><think>\\n'}}";
  constexpr char kOld[] =
      "{{'<｜User｜>' + message['content']}}{%- if add_generation_prompt -%}"
      "{{'<｜Assistant｜>'}}";
  auto opens = ParseChatTemplate(kOpens, "", "", true);
  ASSERT_TRUE(opens.ok()) << opens.status();
  EXPECT_EQ(opens->format, ChatFormat::kDeepSeek);
  EXPECT_TRUE(opens->opens_think_block);
  EXPECT_TRUE(opens->writes_think_blocks());
  EXPECT_FALSE(opens->thinking_switch) << "it reads no enable_thinking";
  auto old = ParseChatTemplate(kOld, "", "", true);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->format, ChatFormat::kDeepSeek);
  EXPECT_FALSE(old->opens_think_block);
}

TEST(ChatTemplateTest, MissingOrUnknownTemplates) {
  EXPECT_EQ(ParseChatTemplate("", "", "", false).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ParseChatTemplate("{{ messages | tojson }}", "", "", false).status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST(ChatTemplateTest, TokenizerUsesTheSpecTemplate) {
  TokenizerSpec spec;
  spec.tokens = {"a", "<|im_start|>", "<|im_end|>"};
  spec.token_types = {TokenType::kNormal, TokenType::kControl, TokenType::kControl};
  spec.chat_template = kSmolLm2Template;
  auto t = Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  auto text = (*t)->ApplyChatTemplate({{"system", "S"}, {"user", "a"}});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\na<|im_end|>\n"
            "<|im_start|>assistant\n");
  spec.chat_template.clear();
  t = Tokenizer::Create(spec);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->ApplyChatTemplate({{"user", "a"}}).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cohost::runtime
