#include "runtime/sampling/json_schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/sampling/json_grammar.h"
#include "tests/support/json_walk.h"

namespace cohost::runtime {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

using testing::CompiledSchema;
using testing::IsDocument;

// A Pydantic model's schema: required and optional fields, an enum, a
// bounded list, an Optional of another model through $defs.
constexpr char kPet[] = R"({
  "title": "Pet", "type": "object",
  "properties": {
    "name": {"type": "string", "title": "Name"},
    "age": {"type": "integer"},
    "weight": {"type": "number"},
    "kind": {"enum": ["cat", "dog"]},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    "owner": {"anyOf": [{"$ref": "#/$defs/Person"}, {"type": "null"}], "default": null},
    "vaccinated": {"type": "boolean"}
  },
  "required": ["name", "age"],
  "$defs": {"Person": {"type": "object", "properties": {"name": {"type": "string"}},
                       "required": ["name"], "additionalProperties": false}}
})";

TEST(JsonSchemaTest, APydanticModelsDocumentsAndNothingElse) {
  const JsonSchema pet = CompiledSchema(kPet);
  for (const char* good : {
           R"({"name":"Rex","age":3})",
           R"({"age": 3, "name": "Rex"})",
           R"({"name":"Tom","age":-1,"weight":4.5e0,"kind":"cat","tags":["a","b"],)"
           R"("owner":{"name":"Ann"},"vaccinated":true})",
           R"({"name":"Tom","age":0,"owner":null,"tags":[]})",
       }) {
    EXPECT_TRUE(IsDocument(pet, good)) << good;
  }
  for (const char* bad : {
           R"({"name":"Rex"})",                        // age is required
           R"({"name":"Rex","age":3,"color":"red"})",  // no other keys
           R"({"name":"Rex","age":3.5})",              // an integer
           R"({"name":"Rex","age":1e3})",
           R"({"name":"Rex","age":3,"kind":"cow"})",
           R"({"name":"Rex","age":3,"kind":"ca"})",
           R"({"name":"Rex","age":3,"tags":["a","b","c"]})",
           R"({"name":"Rex","age":3,"name":"Max"})",  // each key once
           R"({"name":"Rex","age":3,"owner":"Ann"})",
           R"({"name":"Rex","age":3,"owner":{}})",  // the owner's name is required
           R"({"name":"Rex","age":3,"vaccinated":null})",
           R"({"name":3,"age":3})",
           R"(["Rex"])",
       }) {
    EXPECT_FALSE(IsDocument(pet, bad)) << bad;
  }
}

TEST(JsonSchemaTest, StringsKeepTheirLengthsAndOptions) {
  const JsonSchema s = CompiledSchema(
      R"({"type":"object","properties":{"code":{"type":"string","minLength":2,"maxLength":3},)"
      R"("either":{"type":["string","null"],"maxLength":1},"c":{"const":"a\"b"}}})");
  EXPECT_TRUE(IsDocument(s, R"({"code":"ab"})"));
  EXPECT_TRUE(IsDocument(s, R"({"code":"éé中"})")) << "characters, not bytes";
  EXPECT_TRUE(IsDocument(s, R"({"code":"\n\u00e9"})")) << "an escape is one character";
  EXPECT_FALSE(IsDocument(s, R"({"code":"a"})"));
  EXPECT_FALSE(IsDocument(s, R"({"code":"abcd"})"));
  EXPECT_TRUE(IsDocument(s, R"({"either":null})"));
  EXPECT_TRUE(IsDocument(s, R"({"either":"x"})"));
  EXPECT_FALSE(IsDocument(s, R"({"either":"xy"})"));
  // A surrogate pair is one character, escaped or not.
  EXPECT_TRUE(IsDocument(s, R"({"either":"\uD83D\uDE00"})"));
  EXPECT_TRUE(IsDocument(s, "{\"either\":\"\xF0\x9F\x98\x80\"}"));
  EXPECT_FALSE(IsDocument(s, R"({"either":"\uD83D\uDE00x"})"));
  EXPECT_TRUE(IsDocument(s, R"({"code":"\uD83D\uDE00\uD83D\uDE00"})"));
  EXPECT_FALSE(IsDocument(s, R"({"code":"\uD83D\uDE00"})"));
  EXPECT_TRUE(IsDocument(s, R"({"c":"a\"b"})")) << "an option as JSON writes it";
  EXPECT_FALSE(IsDocument(s, R"({"c":"a\u0022b"})"));
  EXPECT_TRUE(IsDocument(s, "{}")) << "nothing is required";
}

TEST(JsonSchemaTest, AnyTopLevelValueAndRecursion) {
  const JsonSchema answer = CompiledSchema(R"({"enum":["yes","no"]})");
  EXPECT_TRUE(IsDocument(answer, R"("yes")"));
  EXPECT_FALSE(IsDocument(answer, R"("y")"));
  EXPECT_FALSE(IsDocument(answer, R"({})"));

  const JsonSchema integer = CompiledSchema(R"({"type":"integer"})");
  JsonGrammar n(integer);
  ASSERT_TRUE(n.FeedAll(integer, "-12"));
  EXPECT_TRUE(n.Complete()) << "a number at the top ends with the document";
  EXPECT_FALSE(n.Feed(integer, '.'));
  EXPECT_TRUE(n.Feed(integer, '3'));

  const JsonSchema tree =
      CompiledSchema(R"({"type":"object","properties":{"v":{"type":"integer"},)"
                     R"("kids":{"type":"array","items":{"$ref":"#"}}},"required":["v"]})");
  EXPECT_TRUE(IsDocument(tree, R"({"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4}]}]})"));
  EXPECT_FALSE(IsDocument(tree, R"({"v":1,"kids":[{"kids":[]}]})"));

  // A Pydantic model that refers to itself through an Optional: the union's
  // alternative is the schema still being compiled.
  const JsonSchema list = CompiledSchema(
      R"({"$ref":"#/$defs/Node","$defs":{"Node":{"type":"object","properties":{)"
      R"("v":{"type":"integer"},"next":{"anyOf":[{"$ref":"#/$defs/Node"},{"type":"null"}]}},)"
      R"("required":["v","next"]}}})");
  EXPECT_TRUE(IsDocument(list, R"({"v":1,"next":{"v":2,"next":null}})"));
  EXPECT_FALSE(IsDocument(list, R"({"v":1,"next":{"v":2}})"));
  EXPECT_FALSE(IsDocument(list, R"({"v":1,"next":[]})"));

  const JsonSchema defs =
      CompiledSchema(R"({"$ref":"#/definitions/A","definitions":{"A":{"$ref":"#/$defs/B"}},)"
                     R"("$defs":{"B":{"type":"array","items":{"type":"boolean"},"minItems":1}}})");
  EXPECT_TRUE(IsDocument(defs, "[true,false]"));
  EXPECT_FALSE(IsDocument(defs, "[]"));

  // A $ref is a JSON pointer into the schema, at any depth, escapes and
  // array indices read.
  const JsonSchema pointers =
      CompiledSchema(R"({"type":"object","properties":{"a":{"type":"integer","minimum":1},)"
                     R"("b":{"$ref":"#/properties/a"},"c":{"$ref":"#/$defs/f/$defs/x~1y"},)"
                     R"("d":{"$ref":"#/$defs/g/anyOf/1"},"e":{"$ref":"#/$defs/h%20i"}},)"
                     R"("required":["a","b","c","d"],"$defs":{"h i":{"type":"null"},)"
                     R"("f":{"$defs":{"x/y":{"enum":["~"]}}},)"
                     R"("g":{"anyOf":[{"type":"string"},{"type":"boolean"}]}}})");
  EXPECT_TRUE(IsDocument(pointers, R"({"a":1,"b":2,"c":"~","d":true})"));
  EXPECT_TRUE(IsDocument(pointers, R"({"a":1,"b":2,"c":"~","d":true,"e":null})"));
  EXPECT_FALSE(IsDocument(pointers, R"({"a":1,"b":2,"c":"~","d":true,"e":0})"));
  EXPECT_FALSE(IsDocument(pointers, R"({"a":1,"b":0,"c":"~","d":true})"));
  EXPECT_FALSE(IsDocument(pointers, R"({"a":1,"b":2,"c":"~","d":"t"})"));

  const JsonSchema free = CompiledSchema(R"({"type":"object","additionalProperties":true,)"
                                         R"("properties":{"id":{"type":"integer"}}})");
  EXPECT_TRUE(IsDocument(free, R"({"x":[1,{"y":null}],"id":7})"));
  EXPECT_FALSE(IsDocument(free, R"({"id":"7"})")) << "a listed key keeps its schema";
}

// Where other keys are allowed, a listed name still keeps its schema: not
// twice, not spelled with escapes.
TEST(JsonSchemaTest, AListedKeyCannotBeWrittenAgainAsAnotherKey) {
  const JsonSchema s = CompiledSchema(R"({"type":"object","additionalProperties":true,)"
                                      R"("properties":{"id":{"type":"integer"}}})");
  EXPECT_TRUE(IsDocument(s, R"({"id":7,"idx":"x"})"));
  EXPECT_FALSE(IsDocument(s, R"({"id":7,"id":"x"})"));
  EXPECT_FALSE(IsDocument(s, R"({"\u0069d":"x"})"));
  EXPECT_FALSE(IsDocument(s, R"({"a\nb":1})")) << "another key is written as is";
  EXPECT_TRUE(IsDocument(JsonSchema::AnyObject(), R"({"a\nb":1,"a\nb":2})"))
      << "without names, any key, as JSON allows";
  // A name with an escape of its own is matched as JSON writes it, and not
  // left inside the escape for another spelling of the same name.
  const JsonSchema quoted = CompiledSchema(R"({"type":"object","additionalProperties":true,)"
                                           R"("properties":{"a\"b":{"type":"integer"}}})");
  EXPECT_TRUE(IsDocument(quoted, R"({"a\"b":1})"));
  EXPECT_FALSE(IsDocument(quoted, R"({"a\u0022b":"x"})"));
  EXPECT_FALSE(IsDocument(quoted, R"({"a\"b":1,"a\"b":2})"));
}

// Past a minimum with no maximum, nothing more is counted: the states of
// the rest of the string (or list) are equal, and share a cached mask.
TEST(JsonSchemaTest, CountsStopWhereTheyNoLongerMatter) {
  const JsonSchema s = CompiledSchema(R"({"type":"object","properties":{)"
                                      R"("s":{"type":"string","minLength":2},)"
                                      R"("l":{"type":"array","minItems":1}}})");
  JsonGrammar a(s), b(s), c(s);
  ASSERT_TRUE(a.FeedAll(s, R"({"s":"abc)"));
  ASSERT_TRUE(b.FeedAll(s, R"({"s":"abcdefg)"));
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(IsDocument(s, R"({"s":"a"})"));
  EXPECT_TRUE(IsDocument(s, R"({"s":"ab"})"));
  ASSERT_TRUE(a.FeedAll(s, R"(","l":[1,2)"));
  ASSERT_TRUE(c.FeedAll(s, R"({"s":"abc","l":[1,2,3,4)"));
  ASSERT_TRUE(a.Feed(s, ',') && c.Feed(s, ','));
  EXPECT_TRUE(a == c);
  EXPECT_FALSE(IsDocument(s, R"({"l":[]})"));
}

// Objects as alternatives, told apart by a tag (a property each requires
// and holds to a string of its own): the tag comes first, and the object is
// its variant from there on (Pydantic's discriminated unions, a call of one
// of several functions).
constexpr char kPets[] = R"({"oneOf": [
    {"type": "object", "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}},
     "required": ["kind", "lives"]},
    {"type": "object", "properties": {"kind": {"const": "dog"}, "breed": {"type": "string"}},
     "required": ["kind"], "additionalProperties": true},
    {"type": "null"}],
  "discriminator": {"propertyName": "kind"}})";

TEST(JsonSchemaTest, ObjectsToldApartByATagAreAlternatives) {
  const JsonSchema pets = CompiledSchema(kPets);
  for (const char* good : {R"({"kind":"cat","lives":9})", R"({"kind": "dog"})",
                           R"({"kind":"dog","breed":"pug","age":3})", "null"}) {
    EXPECT_TRUE(IsDocument(pets, good)) << good;
  }
  for (const char* bad :
       {R"({"kind":"cat"})", R"({"kind":"cat","breed":"pug"})", R"({"lives":9,"kind":"cat"})",
        R"({"kind":"cow"})", "{}", R"({"kind":"cat","kind":"cat","lives":1})"}) {
    EXPECT_FALSE(IsDocument(pets, bad)) << bad;
  }
  for (const char* untagged : {
           R"({"anyOf":[{"type":"object"},{"type":"object","properties":{}}]})",
           R"({"anyOf":[{"properties":{"k":{"const":"a"}},"required":["k"]},)"
           R"({"properties":{"k":{"const":"a"}},"required":["k"]}]})",
           R"({"anyOf":[{"properties":{"k":{"const":"a"}},"required":["k"]},)"
           R"({"properties":{"k":{"const":"b"}}}]})",
       }) {
    absl::StatusOr<JsonSchema> s = JsonSchema::Compile(Json::parse(untagged));
    ASSERT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << untagged;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("need a tag")) << untagged;
  }
  // A recursive union: a variant holds the union again, and a shallow one
  // ends it. Where a deep variant no longer fits, its tag is not offered.
  const JsonSchema expr = CompiledSchema(R"({"$ref": "#/$defs/E", "$defs": {"E": {"oneOf": [
      {"type": "object", "properties": {"op": {"const": "lit"}, "v": {"type": "integer"}},
       "required": ["op", "v"]},
      {"type": "object", "properties": {"op": {"const": "neg"}, "arg": {"$ref": "#/$defs/E"}},
       "required": ["op", "arg"]}]}}})");
  EXPECT_TRUE(IsDocument(expr, R"({"op":"neg","arg":{"op":"neg","arg":{"op":"lit","v":1}}})"));
  EXPECT_FALSE(IsDocument(expr, R"({"op":"neg","arg":{"op":"lit"}})"));
  JsonGrammar deep(expr);
  for (int i = 1; i < kMaxJsonDepth; ++i) ASSERT_TRUE(deep.FeedAll(expr, R"({"op":"neg","arg":)"));
  ASSERT_TRUE(deep.FeedAll(expr, R"({"op":")"));
  JsonGrammar neg = deep;
  EXPECT_FALSE(neg.Feed(expr, 'n')) << "no room for another neg's arg";
  EXPECT_TRUE(deep.FeedAll(expr, R"(lit","v":0})"));
  // Objects beyond six starts: up to 64 alternatives.
  Json many = {{"anyOf", Json::array()}};
  for (int i = 0; i <= kMaxSchemaEnum; ++i) {
    many["anyOf"].push_back(
        {{"properties", {{"k", {{"const", absl::StrCat("t", i)}}}}}, {"required", {"k"}}});
  }
  EXPECT_THAT(std::string(JsonSchema::Compile(many).status().message()), HasSubstr("1 to 64"));
  many["anyOf"].erase(many["anyOf"].size() - 1);
  EXPECT_TRUE(JsonSchema::Compile(many).ok());
}

// References that come back to themselves, through other references or
// requirements, never hang or crash: refused, or compiled where a finite
// document exists.
TEST(JsonSchemaTest, ReferencesAndDepthAreCheckedWhenCompiled) {
  for (const char* bad : {
           R"({"$ref":"#/$defs/A","$defs":{"A":{"allOf":[{"$ref":"#/$defs/B"}]},)"
           R"("B":{"allOf":[{"$ref":"#/$defs/A"}]}}})",
           R"({"type":"object","properties":{"n":{"$ref":"#"}},"required":["n"]})",
           R"({"anyOf":[{"$ref":"#"},{"$ref":"#"}]})",
       }) {
    EXPECT_EQ(JsonSchema::Compile(Json::parse(bad)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  std::string deep = R"({"type":"array","minItems":1,"items":)";
  std::string close = "}";
  for (int i = 0; i < kMaxJsonDepth; ++i) {
    deep += R"({"type":"array","minItems":1,"items":)";
    close += "}";
  }
  EXPECT_THAT(std::string(JsonSchema::Compile(Json::parse(deep + "{}" + close)).status().message()),
              HasSubstr("deeper"));

  const JsonSchema hash =
      CompiledSchema(R"({"$ref":"#/$defs/Node","$defs":{"Node":{"type":"object",)"
                     R"("properties":{"next":{"$ref":"#"}}}}})");
  EXPECT_TRUE(IsDocument(hash, R"({"next":{"next":{}}})"));
  const JsonSchema through_alias =
      CompiledSchema(R"({"$ref":"#/$defs/A","$defs":{"A":{"$ref":"#/$defs/B"},)"
                     R"("B":{"type":"object","properties":{"c":{"$ref":"#/$defs/A"}}}}})");
  EXPECT_TRUE(IsDocument(through_alias, R"({"c":{"c":{}}})"));
  EXPECT_FALSE(IsDocument(through_alias, R"({"c":{"d":{}}})"));

  // A tree as deep as the limit: where a child could not close in time, no
  // child starts, and the document can still end.
  const JsonSchema tree =
      CompiledSchema(R"({"type":"object","properties":{"v":{"type":"integer"},)"
                     R"("kids":{"type":"array","items":{"$ref":"#"}}},"required":["v"]})");
  JsonGrammar g(tree);
  for (int i = 0; i < kMaxJsonDepth / 2 - 1; ++i)
    ASSERT_TRUE(g.FeedAll(tree, R"({"v":1,"kids":[)"));
  ASSERT_TRUE(g.FeedAll(tree, R"({"v":1,"kids":[)")) << "an empty list still fits";
  JsonGrammar full = g;
  EXPECT_FALSE(full.Feed(tree, '{')) << "a child past the limit";
  std::string rest = "]}";
  for (int i = 0; i < kMaxJsonDepth / 2 - 1; ++i) rest += "]}";
  EXPECT_TRUE(g.FeedAll(tree, rest));
  EXPECT_TRUE(g.Complete());
}

TEST(JsonSchemaTest, WhatIsNotHeldToIsRefusedByName) {
  struct Case {
    const char* schema;
    const char* says;
  };
  for (const Case& c : {
           Case{R"({"type":"string","multipleOf":2})", "\"multipleOf\""},
           Case{R"({"type":"string","minimum":0})", "\"minimum\""},
           Case{R"({"type":"object","properties":{"a":{"type":"number","multipleOf":0.0000001}}})",
                "properties.\"a\""},
           Case{R"({"type":"object","required":["b"],"properties":{"a":{}}})", "\"b\""},
           Case{R"({"type":"object","additionalProperties":{"type":"string"}})",
                "additionalProperties"},
           Case{R"({"anyOf":[{"type":"object"},{"type":"object","properties":{}}]})", "tag"},
           Case{R"({"anyOf":[{"type":"number"},{"type":"integer"}]})", "start"},
           Case{R"({"type":"array","minItems":3,"maxItems":2})", "minItems"},
           Case{R"({"enum":[[1,2]]})", "strings, numbers"},
           Case{R"({"$ref":"#/$defs/Missing"})", "$ref"},
           Case{R"({"$ref":"#/$defs/a~2","$defs":{"a~2":{}}})", "points to nothing"},
           Case{R"({"$ref":"#$defs/a","$defs":{"a":{}}})", "points to nothing"},
           Case{R"({"$ref":"#/$defs/a%2","$defs":{"a%2":{}}})", "points to nothing"},
           Case{R"({"$ref":"#/$defs/a%zz","$defs":{"a%zz":{}}})", "points to nothing"},
           Case{R"({"$ref":"other.json#/a"})", "points to nothing"},
           Case{R"({"$ref":"#/$defs/a/anyOf/01","$defs":{"a":{"anyOf":[{},{}]}}})",
                "points to nothing"},
           Case{R"({"$ref":"#/$defs/a/anyOf/2","$defs":{"a":{"anyOf":[{},{}]}}})",
                "points to nothing"},
           Case{R"({"$ref":"#/$defs/a/type","$defs":{"a":{"type":"string"}}})", "must be"},
           Case{R"({"$ref":"#/$defs/A","$defs":{"A":{"$ref":"#/$defs/A"}}})", "itself"},
           Case{R"({"type":"tuple"})", "unknown type"},
           Case{R"({"type":["string","string"]})", "twice"},
           Case{R"({"anyOf":[true,true]})", "start"},
           Case{R"(false)", "false"},
           Case{R"({"allOf":[{"type":"string"},{"minLength":1}]})", "allOf"},
           Case{R"({"not":{"type":"null"}})", "\"not\""},
       }) {
    absl::StatusOr<JsonSchema> s = JsonSchema::Compile(Json::parse(c.schema));
    ASSERT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << c.schema;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.says)) << c.schema;
  }
  Json many = {{"type", "object"}, {"properties", Json::object()}};
  for (int i = 0; i <= kMaxSchemaProperties; ++i) many["properties"][absl::StrCat("p", i)] = {};
  EXPECT_FALSE(JsonSchema::Compile(many).ok());
  // A chain of references compiles each inside the last: bounded, refused,
  // never the thread's stack.
  Json chain = {{"$ref", "#/$defs/d0"}, {"$defs", Json::object()}};
  for (int i = 0; i < 1000; ++i) {
    chain["$defs"][absl::StrCat("d", i)] = {
        {"allOf", Json::array({{{"$ref", absl::StrCat("#/$defs/d", i + 1)}}})}};
  }
  chain["$defs"]["d1000"] = {{"type", "string"}};
  EXPECT_THAT(std::string(JsonSchema::Compile(chain).status().message()), HasSubstr("nested"));
  // A type list's keywords are each type's own, read in place.
  const JsonSchema list =
      CompiledSchema(R"({"type":["array","null"],"items":{"type":"string"},"maxItems":1})");
  EXPECT_TRUE(IsDocument(list, R"(["a"])"));
  EXPECT_TRUE(IsDocument(list, "null"));
  EXPECT_FALSE(IsDocument(list, R"(["a","b"])"));
  EXPECT_FALSE(
      JsonSchema::Compile(Json::parse(R"({"properties":{"a":{}},"required":["a","a"]})")).ok());
  // A client's key is quoted, escaped and cut: the message stays one line.
  absl::StatusOr<JsonSchema> odd = JsonSchema::Compile(
      Json::parse(absl::StrCat(R"({"type":"string","\n)", std::string(200, 'x'), R"(":1})")));
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(std::string(odd.status().message()).find('\n'), std::string::npos);
  EXPECT_LT(odd.status().message().size(), 200u);
}

// From any prefix the grammar takes, some byte goes on (or the document is
// whole): random walks over the bytes each state takes never get stuck,
// and what they complete parses as JSON.
TEST(JsonSchemaTest, NoPrefixItTakesIsADeadEnd) {
  for (const char* text : {kPet, kPets,
                           R"({"type":"object","properties":{"a":{"type":"array","minItems":2,)"
                           R"("maxItems":3,"items":{"enum":["x","xy","z"]}},)"
                           R"("b":{"type":"string","minLength":3,"maxLength":4}},)"
                           R"("required":["a","b"]})",
                           R"({"type":"array","maxItems":0})",
                           R"({"type":"object","properties":{"v":{"type":"integer"},)"
                           R"("kids":{"type":"array","items":{"$ref":"#"}}},"required":["v"]})",
                           R"({"type":"object","properties":{"t":{"$ref":"#"}}})"}) {
    const JsonSchema schema = CompiledSchema(text);
    std::mt19937 rng(3);
    int completed = 0;
    for (int walk = 0; walk < 200; ++walk) {
      const testing::JsonWalk w = testing::WalkJson(schema, rng, 300, 3);
      ASSERT_FALSE(w.stuck) << text << "\nstuck after " << w.doc;
      if (w.complete) {
        ++completed;
        // nlohmann also refuses numbers past a double's range: JSON all the same.
        if (std::regex_search(w.doc, std::regex("[eE][-+]?[0-9]{3}"))) continue;
        EXPECT_TRUE(Json::accept(w.doc)) << w.doc;
      }
    }
    EXPECT_GT(completed, 20) << text;
  }
}

}  // namespace
}  // namespace cohost::runtime
