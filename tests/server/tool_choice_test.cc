// What a chat's tool_choice and parallel_tool_calls ask of the answer
// (server/tool_choice.h), for both front doors: the tools left out, a forced
// call's schema, the stop string that ends one call; the choices a chat
// cannot take, refused naming the field; and the tools' own checks.

#include "server/tool_choice.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/sampling/json_grammar.h"
#include "runtime/sampling/json_schema.h"
#include "runtime/sampling/sampling_params.h"

namespace cohost::server {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kWeatherParameters[] =
    R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})";

// A chat offering get_weather (with parameters) and get_time (without).
v1::GenerateRequest Chat() {
  v1::GenerateRequest r;
  v1::ChatInput* chat = r.mutable_chat();
  v1::ChatMessage* m = chat->add_messages();
  m->set_role("user");
  m->set_content("Weather in Paris?");
  v1::Tool* weather = chat->add_tools();
  weather->set_name("get_weather");
  weather->set_parameters(kWeatherParameters);
  chat->add_tools()->set_name("get_time");
  return r;
}

std::string Message(const absl::StatusOr<ToolOutput>& out) {
  return std::string(out.status().message());
}

TEST(ToolChoiceTest, AutoOffersTheToolsAndAsksNothingMore) {
  v1::GenerateRequest r = Chat();
  EXPECT_FALSE(AsksToolChoice(r)) << "the default";
  absl::StatusOr<ToolOutput> out = ApplyToolChoice(&r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->calls);
  EXPECT_FALSE(out->forced);
  EXPECT_TRUE(out->calls_finish());
  EXPECT_EQ(r.chat().tools_size(), 2);
  EXPECT_EQ(r.response_format(), v1::RESPONSE_FORMAT_TEXT);
  EXPECT_EQ(r.stop_size(), 0);
  // parallel_tool_calls true is the default's any number of calls.
  r.mutable_chat()->set_parallel_tool_calls(true);
  EXPECT_FALSE(AsksToolChoice(r)) << "nothing to apply";
  r.mutable_chat()->set_parallel_tool_calls(false);
  EXPECT_TRUE(AsksToolChoice(r));
  out = ApplyToolChoice(&r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(r.stop_size(), 1);
  EXPECT_FALSE(AsksToolChoice(r)) << "applied, the fields are reset";
}

TEST(ToolChoiceTest, NoneLeavesTheToolsOutButChecksThem) {
  v1::GenerateRequest r = Chat();
  r.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_NONE);
  ASSERT_TRUE(AsksToolChoice(r));
  absl::StatusOr<ToolOutput> out = ApplyToolChoice(&r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(out->calls);
  EXPECT_FALSE(out->Splitter()) << "the answer is text";
  EXPECT_EQ(r.chat().tools_size(), 0);
  EXPECT_EQ(r.chat().tool_choice(), v1::TOOL_CHOICE_AUTO);

  // (The tools left out are checked all the same, before: BuildGenerateRequest.)
  // Without tools, NONE (as AUTO) asks nothing.
  r = Chat();
  r.mutable_chat()->clear_tools();
  r.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_NONE);
  out = ApplyToolChoice(&r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(out->calls);
}

// parallel_tool_calls false: one call at most, the answer ending where its
// block closes; a client's 16 stop strings leave no room for it.
TEST(ToolChoiceTest, OneCallEndsTheAnswerAtItsClosingTag) {
  v1::GenerateRequest r = Chat();
  r.add_stop("END");
  r.mutable_chat()->set_parallel_tool_calls(false);
  absl::StatusOr<ToolOutput> out = ApplyToolChoice(&r);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(r.stop_size(), 2);
  EXPECT_EQ(r.stop(1), "</tool_call>");
  EXPECT_FALSE(r.chat().has_parallel_tool_calls());
  out = ApplyToolChoice(&r);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(r.stop_size(), 2) << "applied once";

  r = Chat();
  for (int i = 0; i < runtime::kMaxStopStrings; ++i) r.add_stop(absl::StrCat("s", i));
  r.mutable_chat()->set_parallel_tool_calls(false);
  const std::string full = Message(ApplyToolChoice(&r));
  EXPECT_THAT(full, StartsWith("parallel_tool_calls false"));
  EXPECT_THAT(full, HasSubstr("at most 15 others"));
  // No tools offered: nothing to end.
  r = Chat();
  for (int i = 0; i < runtime::kMaxStopStrings; ++i) r.add_stop(absl::StrCat("s", i));
  r.mutable_chat()->set_parallel_tool_calls(false);
  r.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_NONE);
  EXPECT_TRUE(ApplyToolChoice(&r).ok());
}

TEST(ToolChoiceTest, AFunctionIsOneCallOfItsArgumentsHeldToItsParameters) {
  v1::GenerateRequest r = Chat();
  r.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_FUNCTION);
  r.mutable_chat()->set_tool_choice_function("get_weather");
  absl::StatusOr<ToolOutput> out = ApplyToolChoice(&r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->calls);
  EXPECT_EQ(out->forced, "get_weather");
  EXPECT_FALSE(out->calls_finish()) << "a named call finishes with stop, as OpenAI's";
  EXPECT_TRUE(out->Splitter());
  EXPECT_EQ(r.response_format(), v1::RESPONSE_FORMAT_JSON_SCHEMA);
  EXPECT_EQ(r.json_schema(), kWeatherParameters);
  EXPECT_EQ(r.chat().tools_size(), 2) << "offered in the prompt";
  EXPECT_EQ(r.chat().tool_choice_function(), "");

  // A function without parameters: any object.
  r = Chat();
  r.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_FUNCTION);
  r.mutable_chat()->set_tool_choice_function("get_time");
  out = ApplyToolChoice(&r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->forced, "get_time");
  EXPECT_EQ(r.response_format(), v1::RESPONSE_FORMAT_JSON_OBJECT);
  EXPECT_EQ(r.json_schema(), "");
}

// A forced call of a tool that is not strict is held to its parameters but
// for the value bounds the grammar cannot hold: those it never holds, at
// every depth (a property named like one stays), and at each schema, its
// value bounds where the grammar cannot hold them there. A strict tool's
// whole schema is kept, for the grammar to refuse what it cannot hold.
TEST(ToolChoiceTest, ANonStrictFunctionsUnheldBoundsAreLeftToTheModel) {
  // A forced call of get_weather with `parameters`, its choice applied.
  const auto forced = [](const std::string& parameters, bool strict) {
    v1::GenerateRequest r = Chat();
    r.mutable_chat()->mutable_tools(0)->set_parameters(parameters);
    r.mutable_chat()->mutable_tools(0)->set_strict(strict);
    r.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_FUNCTION);
    r.mutable_chat()->set_tool_choice_function("get_weather");
    EXPECT_TRUE(ApplyToolChoice(&r).ok()) << parameters;
    return r;
  };
  // The schema it is held to.
  const auto held = [&](const std::string& parameters, bool strict) {
    return forced(parameters, strict).json_schema();
  };
  const std::string parameters =
      R"({"type":"object","properties":{"when":{"type":"string","format":"date-time"},)"
      R"("format":{"type":"string","pattern":"^[a-z]+$"},)"
      R"("days":{"type":"array","items":{"type":"integer","minimum":1,"maximum":9,)"
      R"("multipleOf":3},"uniqueItems":true},"any":{"anyOf":[{"type":"number","multipleOf":0.0000001},)"
      R"({"type":"null"}]},"ref":{"$ref":"#/$defs/r"}},)"
      R"("$defs":{"r":{"type":"integer","exclusiveMinimum":0}},"minProperties":1,)"
      R"("nullable":true})";
  EXPECT_EQ(held(parameters, /*strict=*/false),
            R"({"type":"object","properties":{"when":{"type":"string","format":"date-time"},)"
            R"("format":{"type":"string","pattern":"^[a-z]+$"},)"
            R"("days":{"type":"array","items":{"type":"integer","minimum":1,"maximum":9,)"
            R"("multipleOf":3}},)"
            R"("any":{"anyOf":[{"type":"number"},{"type":"null"}]},"ref":{"$ref":"#/$defs/r"}},)"
            R"("$defs":{"r":{"type":"integer","exclusiveMinimum":0}}})");
  // Enums and consts of any scalar are held.
  const std::string values =
      R"({"type":"object","properties":{"unit":{"type":"string","enum":["c","f"]},)"
      R"("level":{"type":"integer","enum":[1,2,3]},"v":{"const":"x"},"n":{"const":2}}})";
  EXPECT_EQ(held(values, /*strict=*/false), values);
  // Each schema's bounds the grammar cannot hold there are left to the
  // model, and only its: bounds no integer meets, a format it does not
  // know, a pattern outside its subset, bounds beside a combination, a bound
  // finer than it holds (it would round it in), a multipleOf finer than it
  // holds (alone, where the rest hold).
  EXPECT_EQ(held(R"({"type":"object","properties":{"p":{"type":"integer","minimum":5,"maximum":4},)"
                 R"("n":{"type":"number","minimum":0,"maximum":0.5},)"
                 R"("site":{"type":"string","format":"uri","maxLength":2083},)"
                 R"("code":{"type":"string","pattern":"^(?=a)\\w+$"},)"
                 R"("zip":{"type":"string","pattern":"^[0-9]{5}$"},)"
                 R"("k":{"anyOf":[{"type":"integer"},{"type":"null"}],"minimum":1},)"
                 R"("r":{"type":"number","minimum":0.0000001},)"
                 R"("m":{"type":"number","minimum":0,"maximum":1,"multipleOf":0.0000001},)"
                 R"("c":{"type":"number","minimum":0,"multipleOf":0.01}}})",
                 /*strict=*/false),
            R"({"type":"object","properties":{"p":{"type":"integer"},)"
            R"("n":{"type":"number","minimum":0,"maximum":0.5},)"
            R"("site":{"type":"string","maxLength":2083},"code":{"type":"string"},)"
            R"("zip":{"type":"string","pattern":"^[0-9]{5}$"},)"
            R"("k":{"anyOf":[{"type":"integer"},{"type":"null"}]},"r":{"type":"number"},)"
            R"("m":{"type":"number","minimum":0,"maximum":1},)"
            R"("c":{"type":"number","minimum":0,"multipleOf":0.01}}})");
  // A bound finer than the grammar's units is left to the model, though
  // the schema compiles (it would be held narrower, rounded in).
  EXPECT_EQ(held(R"({"type":"object","properties":{"r":{"type":"number","minimum":0.0000001}}})",
                 /*strict=*/false),
            R"({"type":"object","properties":{"r":{"type":"number"}}})");
  // Where the grammar cannot hold them all together (more patterns than
  // runtime::kMaxSchemaPatterns), they are all left to the model.
  std::string many = R"({"type":"object","properties":{)";
  std::string loose = many;
  for (int i = 0; i <= runtime::kMaxSchemaPatterns; ++i) {
    const std::string sep = i > 0 ? "," : "";
    absl::StrAppend(&many, sep, "\"p", i, R"(":{"type":"string","format":"date"})");
    absl::StrAppend(&loose, sep, "\"p", i, R"(":{"type":"string"})");
  }
  EXPECT_EQ(held(many + "}}", /*strict=*/false), loose + "}}");
  // (A fallback, which the metrics count.)
  v1::GenerateRequest all_go = Chat();
  all_go.mutable_chat()->mutable_tools(0)->set_parameters(many + "}}");
  all_go.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_FUNCTION);
  all_go.mutable_chat()->set_tool_choice_function("get_weather");
  const absl::StatusOr<ToolOutput> all_go_output = ApplyToolChoice(&all_go);
  ASSERT_TRUE(all_go_output.ok());
  EXPECT_EQ(all_go_output->fallback, ForcedFallback::kNoValueBounds);

  EXPECT_EQ(held(parameters, /*strict=*/true), parameters) << "held to all of it, or refused";

  // Parameters of no schema at all hold the arguments to an object, not to
  // any JSON value: "{}", and what is left of nothing but value bounds.
  for (const bool strict_tool : {false, true}) {
    for (const char* none : {"{}", R"({"minProperties": 1})"}) {
      const v1::GenerateRequest q = forced(none, strict_tool);
      const bool object = std::string(none) == "{}" || !strict_tool;
      EXPECT_EQ(q.response_format(),
                object ? v1::RESPONSE_FORMAT_JSON_OBJECT : v1::RESPONSE_FORMAT_JSON_SCHEMA)
          << none << (strict_tool ? " strict" : "");
    }
  }
}

TEST(ToolChoiceTest, RequiredIsOneCallOfAnyOfferedFunction) {
  v1::GenerateRequest r = Chat();
  r.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_REQUIRED);
  absl::StatusOr<ToolOutput> out = ApplyToolChoice(&r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->forced, "");
  EXPECT_TRUE(out->calls_finish());
  EXPECT_EQ(r.response_format(), v1::RESPONSE_FORMAT_JSON_SCHEMA);
  // A call of each function, told apart by its name, its arguments held as
  // a forced call of that function is.
  const Json schema = Json::parse(r.json_schema());
  ASSERT_EQ(schema["anyOf"].size(), 2u);
  EXPECT_EQ(schema["anyOf"][0]["properties"]["name"]["const"], "get_weather");
  EXPECT_EQ(schema["anyOf"][0]["properties"]["arguments"], Json::parse(kWeatherParameters));
  EXPECT_EQ(schema["anyOf"][1]["properties"]["arguments"]["additionalProperties"], true);
  EXPECT_EQ(schema["anyOf"][1]["required"], Json::array({"name", "arguments"}));
  const runtime::JsonSchema held = runtime::JsonSchema::Compile(schema).value();
  const auto document = [&](std::string_view text) {
    runtime::JsonGrammar g(held);
    return g.FeedAll(held, text) && g.Complete();
  };
  EXPECT_TRUE(document(R"({"name": "get_weather", "arguments": {"city": "Paris"}})"));
  EXPECT_TRUE(document(R"({"name":"get_time","arguments":{"zone":"UTC"}})"));
  EXPECT_FALSE(document(R"({"name":"get_weather","arguments":{}})")) << "city is required";
  EXPECT_FALSE(document(R"({"name":"get_weather","arguments":{"zone":"UTC"}})"));
  EXPECT_FALSE(document(R"({"arguments":{},"name":"get_time"})")) << "the name comes first";
  EXPECT_FALSE(document(R"({"name":"get_date","arguments":{}})"));

  // Where the grammar cannot hold a function's parameters, every call's
  // arguments are any object (the names still held).
  v1::GenerateRequest odd = Chat();
  odd.mutable_chat()->mutable_tools(0)->set_strict(true);
  odd.mutable_chat()->mutable_tools(0)->set_parameters(
      R"({"type":"object","properties":{"n":{"type":"number","multipleOf":0.0000001}}})");
  odd.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_REQUIRED);
  const absl::StatusOr<ToolOutput> odd_output = ApplyToolChoice(&odd);
  ASSERT_TRUE(odd_output.ok());
  EXPECT_EQ(odd_output->fallback, ForcedFallback::kAnyArguments) << "the metrics count it";
  const Json any = Json::parse(odd.json_schema());
  EXPECT_EQ(any["properties"]["name"]["enum"], Json::array({"get_weather", "get_time"}));
  EXPECT_EQ(any["properties"]["arguments"]["additionalProperties"], true);
  // Parameters with a $ref move under the root's $defs, their references
  // with them, and hold the call's arguments there.
  v1::GenerateRequest refs = Chat();
  refs.mutable_chat()->mutable_tools(0)->set_parameters(
      R"({"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#"}},)"
      R"("unit":{"$ref":"#/$defs/Unit"}},"$defs":{"Unit":{"enum":["c","f"]}}})");
  refs.mutable_chat()->mutable_tools(1)->set_parameters(
      R"({"$ref":"#/definitions/Z","definitions":{"Z":{"type":"object",)"
      R"("properties":{"zone":{"type":"string"}},"required":["zone"]}}})");
  refs.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_REQUIRED);
  ASSERT_TRUE(ApplyToolChoice(&refs).ok());
  const Json moved = Json::parse(refs.json_schema());
  EXPECT_EQ(moved["anyOf"][0]["properties"]["arguments"], Json({{"$ref", "#/$defs/get_weather"}}));
  EXPECT_EQ(moved["$defs"]["get_weather"]["properties"]["unit"]["$ref"],
            "#/$defs/get_weather/$defs/Unit");
  EXPECT_EQ(moved["$defs"]["get_time"]["$ref"], "#/$defs/get_time/definitions/Z");
  const runtime::JsonSchema ref_held = runtime::JsonSchema::Compile(moved).value();
  const auto ref_document = [&](std::string_view text) {
    runtime::JsonGrammar g(ref_held);
    return g.FeedAll(ref_held, text) && g.Complete();
  };
  EXPECT_TRUE(ref_document(
      R"({"name":"get_weather","arguments":{"kids":[{"unit":"c","kids":[]}],"unit":"f"}})"));
  EXPECT_FALSE(ref_document(R"({"name":"get_weather","arguments":{"kids":[{"unit":"k"}]}})"));
  EXPECT_TRUE(ref_document(R"({"name":"get_time","arguments":{"zone":"UTC"}})"));
  EXPECT_FALSE(ref_document(R"({"name":"get_time","arguments":{}})")) << "zone is required";
  // An anchor is no pointer: it is left as written, for the grammar to
  // refuse (not moved to point at another function's parameters).
  v1::GenerateRequest anchor = Chat();
  anchor.mutable_chat()->mutable_tools(0)->set_parameters(
      R"({"type":"object","properties":{"a":{"$ref":"#x"}}})");
  anchor.mutable_chat()->mutable_tools(1)->set_name("get_weatherx");
  anchor.mutable_chat()->mutable_tools(1)->set_parameters(
      R"({"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#"}}}})");
  anchor.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_REQUIRED);
  ASSERT_TRUE(ApplyToolChoice(&anchor).ok());
  EXPECT_EQ(Json::parse(anchor.json_schema())["properties"]["arguments"]["additionalProperties"],
            true);

  // Non-strict functions whose patterns the grammar holds alone but not
  // together (past runtime::kMaxSchemaPatterns) are held without them.
  v1::GenerateRequest dates = Chat();
  for (int t = 0; t < 2; ++t) {
    std::string parameters = R"({"type":"object","properties":{)";
    for (int i = 0; i < 40; ++i) {
      absl::StrAppend(&parameters, i > 0 ? "," : "", "\"d", i,
                      R"(":{"type":"string","format":"date"})");
    }
    dates.mutable_chat()->mutable_tools(t)->set_parameters(parameters + "}}");
  }
  dates.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_REQUIRED);
  const absl::StatusOr<ToolOutput> dates_output = ApplyToolChoice(&dates);
  ASSERT_TRUE(dates_output.ok());
  EXPECT_EQ(dates_output->fallback, ForcedFallback::kNoValueBounds);
  const Json loose = Json::parse(dates.json_schema());
  ASSERT_TRUE(loose.contains("anyOf")) << loose;
  EXPECT_EQ(loose["anyOf"][1]["properties"]["arguments"]["properties"]["d39"],
            Json({{"type", "string"}}));

  // One function: its call alone.
  v1::GenerateRequest one = Chat();
  one.mutable_chat()->mutable_tools()->RemoveLast();
  one.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_REQUIRED);
  const absl::StatusOr<ToolOutput> one_output = ApplyToolChoice(&one);
  ASSERT_TRUE(one_output.ok());
  EXPECT_EQ(one_output->fallback, ForcedFallback::kNone);
  const Json call = Json::parse(one.json_schema());
  EXPECT_EQ(call["properties"]["name"]["const"], "get_weather");
  EXPECT_EQ(call["properties"]["arguments"], Json::parse(kWeatherParameters));

  // The grammar's enum of names holds 64: more is refused, where AUTO takes them.
  r = Chat();
  for (int i = 2; i < runtime::kMaxSchemaEnum; ++i) {
    r.mutable_chat()->add_tools()->set_name(absl::StrCat("f", i));
  }
  r.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_REQUIRED);
  EXPECT_TRUE(ApplyToolChoice(&r).ok()) << "64 tools";
  EXPECT_EQ(Json::parse(r.json_schema())["anyOf"].size(), 64u) << "a call of each, held";
  r.mutable_chat()->add_tools()->set_name("f64");
  r.set_response_format(v1::RESPONSE_FORMAT_TEXT);
  r.clear_json_schema();
  r.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_REQUIRED);
  EXPECT_THAT(Message(ApplyToolChoice(&r)), HasSubstr("at most 64 tools (65 given)"));
  r.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_AUTO);
  EXPECT_TRUE(ApplyToolChoice(&r).ok()) << "65 tools";
}

TEST(ToolChoiceTest, ChoicesAChatCannotTakeAreRefusedNamingTheField) {
  struct Case {
    const char* what;
    v1::ToolChoice choice;
    const char* function;
    bool tools;
    v1::ResponseFormat format;
    const char* message;  // its start
  };
  const Case cases[] = {
      {"a function not offered", v1::TOOL_CHOICE_FUNCTION, "nope", true, v1::RESPONSE_FORMAT_TEXT,
       "tool_choice names a function that tools does not offer"},
      {"a function without its name", v1::TOOL_CHOICE_FUNCTION, "", true, v1::RESPONSE_FORMAT_TEXT,
       "tool_choice FUNCTION names its function"},
      {"a name without FUNCTION", v1::TOOL_CHOICE_REQUIRED, "get_time", true,
       v1::RESPONSE_FORMAT_TEXT, "tool_choice FUNCTION names its function"},
      {"a mode nobody knows", static_cast<v1::ToolChoice>(9), "", true, v1::RESPONSE_FORMAT_TEXT,
       "tool_choice must be AUTO (0), NONE (1), REQUIRED (2) or FUNCTION (3), got 9"},
      {"required without tools", v1::TOOL_CHOICE_REQUIRED, "", false, v1::RESPONSE_FORMAT_TEXT,
       "tool_choice needs tools"},
      {"a function without tools", v1::TOOL_CHOICE_FUNCTION, "get_time", false,
       v1::RESPONSE_FORMAT_TEXT, "tool_choice needs tools"},
      {"required with a response format", v1::TOOL_CHOICE_REQUIRED, "", true,
       v1::RESPONSE_FORMAT_JSON_OBJECT, "tool_choice cannot force a call with a response_format"},
      {"a function with a response format", v1::TOOL_CHOICE_FUNCTION, "get_time", true,
       v1::RESPONSE_FORMAT_JSON_SCHEMA, "tool_choice cannot force a call with a response_format"},
  };
  // A schema of the client's own beside a forced call, even unasked for.
  v1::GenerateRequest own = Chat();
  own.mutable_chat()->set_tool_choice(v1::TOOL_CHOICE_REQUIRED);
  own.set_json_schema(R"({"type":"object"})");
  EXPECT_THAT(Message(ApplyToolChoice(&own)),
              StartsWith("tool_choice cannot force a call with a response_format or json_schema"));
  for (const Case& c : cases) {
    v1::GenerateRequest r = Chat();
    if (!c.tools) r.mutable_chat()->clear_tools();
    r.mutable_chat()->set_tool_choice(c.choice);
    r.mutable_chat()->set_tool_choice_function(c.function);
    r.set_response_format(c.format);
    const absl::StatusOr<ToolOutput> out = ApplyToolChoice(&r);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(Message(out), StartsWith(c.message)) << c.what;
  }
}

TEST(ToolChoiceTest, ToolsAreCheckedByName) {
  v1::GenerateRequest r = Chat();
  EXPECT_TRUE(CheckTools(r.chat()).ok());
  r.mutable_chat()->mutable_tools(1)->set_name("get_weather");
  EXPECT_EQ(CheckTools(r.chat()).message(),
            "tools[1].name \"get_weather\" names a function already offered");
  r = Chat();
  r.mutable_chat()->mutable_tools(0)->set_parameters("[1]");
  EXPECT_EQ(CheckTools(r.chat()).message(), "tools[0].parameters must be a JSON object");
  r.mutable_chat()->mutable_tools(0)->set_parameters("{");
  EXPECT_THAT(std::string(CheckTools(r.chat()).message()), StartsWith("tools[0].parameters"));
  r = Chat();
  r.mutable_chat()->mutable_tools(0)->set_name(std::string(65, 'a'));
  EXPECT_THAT(std::string(CheckTools(r.chat()).message()), StartsWith("tools[0].name must be"));
  r = Chat();
  for (int i = 2; i <= kMaxTools; ++i)
    r.mutable_chat()->add_tools()->set_name(absl::StrCat("f", i));
  EXPECT_THAT(std::string(CheckTools(r.chat()).message()), HasSubstr("129 tools, at most 128"));
}

// A schema the grammar cannot take, in the chat's terms: the function's
// parameters, not a json_schema the client never sent.
TEST(ToolChoiceTest, ASchemaErrorOfAForcedCallIsTheFunctions) {
  const absl::Status schema =
      absl::InvalidArgumentError("json_schema at /x: minimum is not served");
  const ToolOutput named{.calls = true, .forced = "get_weather"};
  EXPECT_EQ(InToolTerms(named, schema).message(),
            "tool_choice holds the answer to the parameters of get_weather at /x: minimum is "
            "not served");
  const ToolOutput any{.calls = true, .forced = ""};
  EXPECT_THAT(std::string(InToolTerms(any, schema).message()),
              StartsWith("tool_choice holds the answer to the call's schema at /x"));
  EXPECT_EQ(InToolTerms(ToolOutput{.calls = true, .forced = std::nullopt}, schema), schema)
      << "the client's own schema";
}

}  // namespace
}  // namespace cohost::server
