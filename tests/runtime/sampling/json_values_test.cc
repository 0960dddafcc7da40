// The value keywords a schema holds a document to: number bounds and
// multipleOf, enums of any scalars, patterns and formats (json_number.h, string_pattern.h),
// byte by byte through JsonGrammar.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <regex>
#include <string>

#include "nlohmann/json.hpp"
#include "runtime/sampling/json_grammar.h"
#include "runtime/sampling/json_schema.h"
#include "tests/support/json_walk.h"

namespace cohost::runtime {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

using testing::CompiledSchema;
using testing::IsDocument;

// How many bytes of `text` the grammar takes before it refuses one.
size_t Taken(const JsonSchema& schema, std::string_view text) {
  JsonGrammar g(schema);
  size_t n = 0;
  while (n < text.size() && g.Feed(schema, static_cast<uint8_t>(text[n]))) ++n;
  return n;
}

void ExpectDocuments(const char* schema_text, std::vector<const char*> good,
                     std::vector<const char*> bad) {
  const JsonSchema schema = CompiledSchema(schema_text);
  for (const char* g : good) EXPECT_TRUE(IsDocument(schema, g)) << schema_text << "  " << g;
  for (const char* b : bad) EXPECT_FALSE(IsDocument(schema, b)) << schema_text << "  " << b;
}

TEST(JsonValuesTest, IntegerBounds) {
  // (5.0 and 1e2 are integers to JSON Schema; an integer is written without
  // a fraction or exponent here.)
  ExpectDocuments(R"({"type":"integer","minimum":1,"maximum":100})", {"1", "100", "57"},
                  {"0", "101", "-1", "1000", "5.0", "1e2"});
  ExpectDocuments(R"({"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10})", {"1", "9"},
                  {"0", "10", "-0"});
  ExpectDocuments(R"({"type":"integer","minimum":-20,"maximum":-10})", {"-10", "-20", "-15"},
                  {"-9", "-21", "-1", "10"});
  // A fractional bound of an integer rounds inwards.
  ExpectDocuments(R"({"type":"integer","minimum":0.5,"exclusiveMaximum":3.5})", {"1", "3"},
                  {"0", "4"});
  ExpectDocuments(R"({"type":"integer","minimum":0})", {"0", "-0", "123456789012345678901234"},
                  {"-1"});
  // A prefix is refused at the first byte that no number in bounds has.
  const JsonSchema negative = CompiledSchema(R"({"type":"integer","minimum":-20,"maximum":-10})");
  EXPECT_EQ(Taken(negative, "-3"), 1u) << "-3... is below -20";
  EXPECT_EQ(Taken(negative, "-1"), 2u) << "-1 may become -10 to -19";
  EXPECT_EQ(Taken(negative, "-21"), 2u);
  EXPECT_EQ(Taken(negative, "5"), 0u);
}

TEST(JsonValuesTest, NumberBounds) {
  ExpectDocuments(R"({"type":"number","minimum":0,"maximum":1})",
                  {"0", "0.5", "1", "1.0", "1.000", "-0", "-0.0", "0.999"},
                  {"1.5", "1.01", "-0.1", "2", "1e0", "-1"});
  ExpectDocuments(R"({"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1})",
                  {"0.5", "0.001"}, {"0", "0.0", "1", "1.0", "-0.5"});
  ExpectDocuments(R"({"type":"number","minimum":-2.0,"maximum":-1})", {"-1", "-1.5", "-2"},
                  {"-2.5", "-0.5", "1"});
  const JsonSchema unit = CompiledSchema(R"({"type":"number","minimum":0,"maximum":1})");
  EXPECT_EQ(Taken(unit, "1.05"), 3u);
  EXPECT_EQ(Taken(unit, "12"), 1u);
  EXPECT_EQ(Taken(unit, "0e1"), 1u) << "no exponent once bounded";
}

// A number's fractional bounds count units of their finest decimal.
TEST(JsonValuesTest, FractionalNumberBounds) {
  ExpectDocuments(R"({"type":"number","minimum":0,"maximum":0.5})",
                  {"0", "0.5", "0.25", "0.5000", "0.49999", "-0"},
                  {"0.51", "0.5001", "1", "-0.1", "0.50000001"});
  ExpectDocuments(R"({"type":"number","exclusiveMinimum":0.1,"exclusiveMaximum":0.3})",
                  {"0.2", "0.10001", "0.29999", "0.11"},
                  {"0.1", "0.3", "0.10000", "0.05", "0.3001"});
  ExpectDocuments(R"({"type":"number","minimum":-1.25,"maximum":2.5})",
                  {"-1.25", "-1.2", "2.5", "0", "-1.2500"}, {"-1.26", "-1.250001", "2.51", "-2"});
  // Past kMaxBoundDecimals, a bound is rounded in (narrower, never wider).
  ExpectDocuments(R"({"type":"number","minimum":0.0000001})", {"0.000001", "1"},
                  {"0", "0.0000001", "-1"});
  // An enum keeps the values within (exactly: 0.3 is not 0.29999...).
  ExpectDocuments(R"({"type":"number","enum":[0.1,0.2,0.3],"maximum":0.2})", {"0.1", "0.2"},
                  {"0.3"});
  ExpectDocuments(R"({"type":"number","enum":[0.1,0.3],"exclusiveMinimum":0.1})", {"0.3"}, {"0.1"});
  const JsonSchema half = CompiledSchema(R"({"type":"number","minimum":0,"maximum":0.5})");
  EXPECT_EQ(Taken(half, "0.6"), 2u);
  EXPECT_EQ(Taken(half, "0.50001"), 6u);
  EXPECT_EQ(Taken(half, "3"), 0u);
}

// Random bounds of up to six decimals against random decimals of up to
// eight: the grammar's verdict is the exact one.
TEST(JsonValuesTest, FractionalBoundsAgreeWithExactArithmetic) {
  std::mt19937 rng(11);
  const auto power = [](int k) {
    int64_t p = 1;
    for (int i = 0; i < k; ++i) p *= 10;
    return p;
  };
  // x / 10^k as JSON text ("-0.000" for a negative zero).
  const auto text = [&](int64_t x, int k, bool negative_zero = false) {
    const int64_t unit = power(k);
    std::string s = x < 0 || (x == 0 && negative_zero) ? "-" : "";
    const int64_t m = x < 0 ? -x : x;
    s += std::to_string(m / unit);
    if (k > 0) {
      const std::string frac = std::to_string(m % unit);
      s.push_back('.');
      s.append(static_cast<size_t>(k) - frac.size(), '0');
      s += frac;
    }
    return s;
  };
  constexpr int kFine = 14;  // the units every value and bound is compared in
  for (int round = 0; round < 300; ++round) {
    const int lo_k = static_cast<int>(rng() % 7), hi_k = static_cast<int>(rng() % 7);
    const int64_t lo = static_cast<int64_t>(rng() % (4001 * power(lo_k))) - 2000 * power(lo_k);
    const int64_t hi = static_cast<int64_t>(rng() % (4001 * power(hi_k))) - 2000 * power(hi_k);
    const bool lo_open = rng() % 2, hi_open = rng() % 2;
    const std::string schema_text =
        std::string(R"({"type":"number",")") + (lo_open ? "exclusiveMinimum" : "minimum") +
        "\":" + text(lo, lo_k) + ",\"" + (hi_open ? "exclusiveMaximum" : "maximum") +
        "\":" + text(hi, hi_k) + "}";
    const int64_t lo_fine = lo * power(kFine - lo_k), hi_fine = hi * power(kFine - hi_k);
    const absl::StatusOr<JsonSchema> schema = JsonSchema::Compile(Json::parse(schema_text));
    const bool empty = lo_fine > hi_fine || (lo_fine == hi_fine && (lo_open || hi_open));
    ASSERT_EQ(schema.ok(), !empty) << schema_text << schema.status();
    if (empty) continue;
    for (int i = 0; i < 30; ++i) {
      const int k = static_cast<int>(rng() % 9);
      const int64_t x = static_cast<int64_t>(rng() % (6000 * power(k))) - 3000 * power(k);
      const int64_t v = x * power(kFine - k);
      const bool within =
          (lo_open ? v > lo_fine : v >= lo_fine) && (hi_open ? v < hi_fine : v <= hi_fine);
      const std::string value = text(x, k, /*negative_zero=*/x == 0 && rng() % 2);
      EXPECT_EQ(IsDocument(*schema, value), within) << schema_text << "  " << value;
    }
  }
}

// multipleOf holds an integer (or a number whose multipleOf is whole,
// written as one) to the multiples, with its bounds; an integer's multipleOf
// may have decimals (its values are multiples of the reduced numerator); a
// number's with decimals counts units of its decimals (no other digit past
// them than 0).
TEST(JsonValuesTest, MultipleOf) {
  ExpectDocuments(R"({"type":"integer","multipleOf":5,"minimum":3,"maximum":22})",
                  {"5", "10", "20", "15"}, {"0", "3", "25", "12", "-5", "10.0"});
  ExpectDocuments(R"({"type":"integer","multipleOf":7})",
                  {"0", "-0", "7", "-14", "7000000000000000000000000000000"},
                  {"1", "-15", "7000000000000000000000000000001"});
  ExpectDocuments(R"({"type":"integer","multipleOf":2.5})", {"5", "-10", "0"}, {"2", "7", "2.5"});
  ExpectDocuments(R"({"type":"integer","multipleOf":0.1})", {"1", "-3", "17"}, {"0.1"});
  ExpectDocuments(R"({"type":"number","multipleOf":3,"maximum":10.5})", {"3", "9", "-3", "0"},
                  {"3.0", "12", "4", "1.5"});
  ExpectDocuments(R"({"type":"number","multipleOf":1,"exclusiveMinimum":0.5})", {"1", "2"},
                  {"0", "0.75", "1.5"});
  ExpectDocuments(R"({"type":"integer","enum":[3,4,6,9],"multipleOf":3})", {"3", "6", "9"}, {"4"});
  ExpectDocuments(
      R"({"type":"number","multipleOf":0.01})",
      {"0", "0.01", "1.5", "12.34", "-3", "1.50", "1.5000", "123456789012345678901234567.89"},
      {"0.001", "1.234", "1e2", "0.015"});
  ExpectDocuments(R"({"type":"number","multipleOf":0.25,"minimum":0,"maximum":1})",
                  {"0", "0.25", "0.5", "0.75", "1", "0.50", "1.00"},
                  {"0.3", "1.25", "-0.25", "0.125"});
  ExpectDocuments(R"({"type":"number","multipleOf":0.3,"exclusiveMinimum":-1})",
                  {"-0.9", "0.3", "0.6", "3", "30000000000000000000000.3"},
                  {"-1.2", "0.1", "1", "30000000000000000000000.1"});
  ExpectDocuments(R"({"type":"number","enum":[0.1,0.2,0.25,1],"multipleOf":0.05})",
                  {"0.1", "0.2", "0.25", "1"}, {});
  ExpectDocuments(R"({"type":"number","enum":[0.1,0.4,0.25],"multipleOf":0.2})", {"0.4"},
                  {"0.1", "0.25"});
  const JsonSchema quarters =
      CompiledSchema(R"({"type":"number","multipleOf":0.25,"minimum":0,"maximum":1})");
  EXPECT_EQ(Taken(quarters, "0.3"), 2u) << "0.3... holds no multiple of 0.25";
  EXPECT_EQ(Taken(quarters, "0.2"), 3u) << "0.25";
  EXPECT_EQ(Taken(quarters, "0.251"), 4u) << "no digit past the units but 0";
  const JsonSchema fives =
      CompiledSchema(R"({"type":"integer","multipleOf":5,"minimum":3,"maximum":22})");
  EXPECT_EQ(Taken(fives, "3"), 0u) << "no multiple of 5 in 3..22 starts with 3";
  EXPECT_EQ(Taken(fives, "2"), 1u) << "20";
  EXPECT_EQ(Taken(fives, "21"), 1u);
}

// Random bounds and multiples against every integer near them: the
// grammar's verdict is the exact one, and a schema is refused exactly
// where no value is left.
TEST(JsonValuesTest, MultipleOfAgreesWithExactArithmetic) {
  std::mt19937 rng(5);
  for (int round = 0; round < 60; ++round) {
    const int64_t k = 1 + static_cast<int64_t>(rng() % 40);
    const bool has_lo = rng() % 4 != 0, has_hi = rng() % 4 != 0;
    const int64_t lo = static_cast<int64_t>(rng() % 1001) - 500;
    const int64_t hi = lo + static_cast<int64_t>(rng() % 200) - 20;
    Json schema_json{{"type", "integer"}, {"multipleOf", k}};
    if (has_lo) schema_json["minimum"] = lo;
    if (has_hi) schema_json["maximum"] = hi;
    const auto allowed = [&](int64_t v) {
      return v % k == 0 && (!has_lo || v >= lo) && (!has_hi || v <= hi);
    };
    bool any = !has_lo || !has_hi;
    for (int64_t v = lo; v <= hi && !any; ++v) any = allowed(v);
    const absl::StatusOr<JsonSchema> schema = JsonSchema::Compile(schema_json);
    ASSERT_EQ(schema.ok(), any) << schema_json.dump() << schema.status();
    if (!any) continue;
    for (int64_t v = -700; v <= 700; ++v) {
      EXPECT_EQ(IsDocument(*schema, std::to_string(v)), allowed(v)) << schema_json.dump() << v;
    }
  }
}

// Random fractional multiples and bounds against decimals of up to four
// places: the grammar's verdict is the exact one.
TEST(JsonValuesTest, FractionalMultipleOfAgreesWithExactArithmetic) {
  std::mt19937 rng(17);
  // x / 10^4 as JSON text.
  const auto text = [](int64_t x) {
    std::string s = x < 0 ? "-" : "";
    const int64_t m = x < 0 ? -x : x;
    const std::string frac = std::to_string(m % 10000);
    return s + std::to_string(m / 10000) + "." + std::string(4 - frac.size(), '0') + frac;
  };
  for (int round = 0; round < 40; ++round) {
    // A multiple of k / 10^d, d of 1 to 3, not whole (in units of 10^-4:
    // k * 10^(4-d)).
    const int d = 1 + static_cast<int>(rng() % 3);
    int64_t k = 1 + static_cast<int64_t>(rng() % 30);
    if (k % 10 == 0) ++k;
    int64_t step = k;
    for (int i = d; i < 4; ++i) step *= 10;
    Json schema_json{{"type", "number"}};
    std::string m = std::to_string(k);
    while (static_cast<int>(m.size()) <= d) m.insert(m.begin(), '0');
    m.insert(m.end() - d, '.');
    schema_json["multipleOf"] = Json::parse(m);
    const bool has_lo = rng() % 3 != 0, has_hi = rng() % 3 != 0;
    const int64_t lo = static_cast<int64_t>(rng() % 40001) - 20000;  // units of 10^-4
    const int64_t hi = lo + static_cast<int64_t>(rng() % 30000);
    if (has_lo) schema_json["minimum"] = Json::parse(text(lo));
    if (has_hi) schema_json["exclusiveMaximum"] = Json::parse(text(hi));
    bool any = !has_lo || !has_hi;
    for (int64_t v = lo; v < hi && !any; ++v) any = v % step == 0;
    const absl::StatusOr<JsonSchema> schema = JsonSchema::Compile(schema_json);
    ASSERT_EQ(schema.ok(), any) << schema_json.dump() << schema.status();
    if (!any) continue;
    for (int i = 0; i < 300; ++i) {
      const int64_t v = static_cast<int64_t>(rng() % 60001) - 30000;
      const bool within = v % step == 0 && (!has_lo || v >= lo) && (!has_hi || v < hi);
      EXPECT_EQ(IsDocument(*schema, text(v)), within) << schema_json.dump() << "  " << text(v);
    }
  }
}

// Bounds and enums where rounding would show: enum values are filtered by
// the bounds as written; units coarse enough for a large bound; a range
// that only rounding empties says so.
TEST(JsonValuesTest, BoundsPastTheirUnits) {
  ExpectDocuments(R"({"type":"number","enum":[0.1234567,0.1234568],"maximum":0.1234567})",
                  {"0.1234567"}, {"0.1234568"});
  // (An enum's number is written as its value dumps: 5e-07.)
  ExpectDocuments(R"({"enum":[0.0000005,1],"minimum":0.0000001})", {"5e-07", "1"},
                  {"0", "0.0000005"});
  ExpectDocuments(R"({"type":"number","minimum":0.001,"maximum":9007199254740991})",
                  {"5000000000000000", "9007199254740991", "1"}, {"9007199254740992", "-1", "0"});
  absl::StatusOr<JsonSchema> tiny =
      JsonSchema::Compile(Json::parse(R"({"type":"number","exclusiveMinimum":0,"maximum":1e-7})"));
  ASSERT_FALSE(tiny.ok());
  EXPECT_THAT(std::string(tiny.status().message()), HasSubstr("held to 6 decimals"));
}

TEST(JsonValuesTest, EnumsOfAnyScalar) {
  // An enum's number is written as its value is (1, not 1.0).
  ExpectDocuments(R"({"enum":[1,12,"a",null,true,2.5]})",
                  {"1", "12", R"("a")", "null", "true", "2.5"},
                  {"false", "3", "13", "121", R"("b")", "2.50", "1.0"});
  ExpectDocuments(R"({"type":"object","properties":{"n":{"const":3}},"required":["n"]})",
                  {R"({"n":3})", R"({"n": 3 })"}, {R"({"n":30})", R"({"n":"3"})"});
  // A type's enum keeps its own values; bounds filter them.
  ExpectDocuments(R"({"type":"integer","enum":[1,2.5,3,4.0],"maximum":3})", {"1", "3"},
                  {"2.5", "4.0"});
  ExpectDocuments(R"({"type":["string","null"],"enum":["a"]})", {R"("a")"}, {"null"});
  ExpectDocuments(R"({"type":"boolean","const":false})", {"false"}, {"true"});
  ExpectDocuments(R"({"type":"array","items":{"enum":[0,1]}})", {"[0,1,1,0]", "[]"},
                  {"[2]", "[01]"});
}

TEST(JsonValuesTest, PatternsAndFormats) {
  ExpectDocuments(R"({"type":"string","pattern":"^[a-z]+$"})", {R"("abc")"},
                  {R"("")", R"("aB")", R"("a1")"});
  ExpectDocuments(R"({"type":"string","pattern":"^[a-z]+$","minLength":3,"maxLength":4})",
                  {R"("abc")", R"("abcd")"}, {R"("ab")", R"("abcde")"});
  // Characters JSON escapes are written with their short escapes.
  ExpectDocuments(R"({"type":"string","pattern":"^a\\nb\"$"})", {R"("a\nb\"")"},
                  {R"("a\u000ab\"")", "\"a\nb\\\"\""});
  ExpectDocuments(R"({"type":"string","pattern":"^[^@]+@x$"})", {"\"caf\xC3\xA9@x\""}, {R"("@x")"});
  ExpectDocuments(R"({"type":"string","format":"date-time"})", {R"("2024-06-01T12:30:00Z")"},
                  {R"("2024-06-01")", R"("2024-02-30T00:00:00Z")"});
  ExpectDocuments(R"({"type":"string","format":"uuid"})",
                  {R"("123e4567-e89b-12d3-a456-426614174000")"}, {R"("123e4567")"});
  // An enum keeps the values its pattern matches.
  ExpectDocuments(R"({"type":"string","enum":["ab","A1"],"pattern":"^[a-z]+$"})", {R"("ab")"},
                  {R"("A1")"});
  // An unanchored pattern matches anywhere.
  ExpectDocuments(R"({"type":"string","pattern":"\\d"})", {R"("ab3c")", R"("3")"}, {R"("abc")"});
  // A length within the pattern's reach stops the string in time.
  const JsonSchema pair = CompiledSchema(R"({"type":"string","pattern":"^(ab)+$","maxLength":5})");
  EXPECT_EQ(Taken(pair, R"("ababa)"), 5u) << "a fifth character leaves no even length";
}

TEST(JsonValuesTest, WhatCannotBeHeldIsRefusedByName) {
  struct Case {
    const char* schema;
    const char* says;
  };
  for (const Case& c : {
           Case{R"({"type":"integer","minimum":5,"maximum":4})", "no integer"},
           Case{R"({"type":"integer","exclusiveMinimum":4,"exclusiveMaximum":5})", "no integer"},
           Case{R"({"type":"number","minimum":0.5,"exclusiveMaximum":0.5})", "no number"},
           Case{R"({"type":"number","exclusiveMinimum":true})", "must be a number"},
           Case{R"({"type":"integer","minimum":1e30})", "2^62"},
           Case{R"({"type":"integer","enum":[1,2],"minimum":3})", "within the bounds"},
           Case{R"({"enum":[{"a":1}]})", "strings, numbers"},
           Case{R"({"type":"integer","enum":["a"]})", "no integer value"},
           Case{R"({"type":["integer","null"],"enum":["a"]})", "no value of the types"},
           Case{R"({"type":"string","pattern":"^[a-z]{2}$","minLength":3})", "length"},
           Case{R"({"type":"string","pattern":"^a+$","maxLength":300})", "maxLength above"},
           Case{R"({"type":"string","pattern":"^a","format":"date"})", "together"},
           Case{R"({"type":"string","format":"ipv6"})", "format"},
           Case{R"j({"type":"string","pattern":"(?!x)"})j", "lookahead"},
           Case{R"({"type":"string","enum":["b"],"pattern":"^a$"})", "matches"},
           Case{R"({"type":"integer","multipleOf":0})", "above 0"},
           Case{R"({"type":"integer","multipleOf":-2})", "above 0"},
           Case{R"({"type":"integer","multipleOf":"2"})", "above 0"},
           Case{R"({"type":"number","multipleOf":0.0000001})", "6 decimals"},
           Case{R"({"type":"integer","multipleOf":1e10})", "at most 1000000000"},
           Case{R"({"type":"integer","multipleOf":5,"minimum":1,"maximum":4})",
                "no integer multiple of multipleOf"},
           Case{R"({"type":"string","multipleOf":2})", "multipleOf"},
       }) {
    absl::StatusOr<JsonSchema> s = JsonSchema::Compile(Json::parse(c.schema));
    ASSERT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << c.schema;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.says)) << c.schema;
  }
  // A bound past 2^62 is held at 2^62: narrower, never wider.
  ExpectDocuments(R"({"type":"integer","maximum":1e30})", {"4611686018427387904", "-7"},
                  {"4611686018427387905", "1000000000000000000000000000000000000000"});
  ExpectDocuments(R"({"type":"number","minimum":-1e30})",
                  {"-4611686018427387904", "-4611686018427387903.5", "0"},
                  {"-4611686018427387904.5", "-1e31", "-4611686018427387905"});
}

// Random walks over the bytes each state takes never get stuck, and every
// document they complete holds its values to the schema.
TEST(JsonValuesTest, WalksEndInDocumentsThatHoldTheirValues) {
  const char* text = R"({"type":"object","properties":{
      "i":{"type":"integer","minimum":-15,"maximum":230},
      "n":{"type":"number","exclusiveMinimum":-1,"maximum":2},
      "e":{"enum":[7,"x",null,false,70]},
      "p":{"type":"string","pattern":"^[a-c]{1,3}-\\d$"},
      "q":{"type":"string","pattern":"^(ab)+$","minLength":3,"maxLength":7},
      "d":{"type":"string","format":"date"},
      "f":{"type":"number","exclusiveMinimum":-0.25,"maximum":0.125},
      "g":{"type":"number","minimum":0.000001,"exclusiveMaximum":0.000003},
      "m":{"type":"integer","minimum":-40,"exclusiveMaximum":1000,"multipleOf":7},
      "c":{"type":"number","minimum":-3,"exclusiveMaximum":7.5,"multipleOf":0.25}},
    "required":["i","n","e","p","q","d","f","g","m","c"],"additionalProperties":false})";
  const JsonSchema schema = CompiledSchema(text);
  const std::regex p_pattern("^[a-c]{1,3}-[0-9]$");
  const std::regex q_pattern("^(ab)+$");
  const std::regex d_pattern("^[0-9]{4}-[0-9]{2}-[0-9]{2}$");
  std::mt19937 rng(11);
  int completed = 0;
  for (int walk = 0; walk < 300; ++walk) {
    const testing::JsonWalk w = testing::WalkJson(schema, rng, 400, 2);
    ASSERT_FALSE(w.stuck) << "stuck after " << w.doc;
    if (!w.complete) continue;
    ++completed;
    const std::string& doc = w.doc;
    const Json d = Json::parse(doc);
    const auto i = d["i"].get<int64_t>();
    EXPECT_TRUE(i >= -15 && i <= 230) << doc;
    const auto n = d["n"].get<double>();
    EXPECT_TRUE(n > -1 && n <= 2) << doc;
    EXPECT_TRUE(d["e"] == Json(7) || d["e"] == Json("x") || d["e"].is_null() ||
                d["e"] == Json(false) || d["e"] == Json(70))
        << doc;
    EXPECT_TRUE(std::regex_match(d["p"].get<std::string>(), p_pattern)) << doc;
    const auto q = d["q"].get<std::string>();
    EXPECT_TRUE(std::regex_match(q, q_pattern) && q.size() >= 3 && q.size() <= 7) << doc;
    EXPECT_TRUE(std::regex_match(d["d"].get<std::string>(), d_pattern)) << doc;
    // (Closed on doubles: a decimal within reads as a double within them.)
    const auto f = d["f"].get<double>();
    EXPECT_TRUE(f >= -0.25 && f <= 0.125) << doc;
    const auto g = d["g"].get<double>();
    EXPECT_TRUE(g >= 0.000001 && g <= 0.000003) << doc;
    const auto m = d["m"].get<int64_t>();
    EXPECT_TRUE(m >= -40 && m < 1000 && m % 7 == 0) << doc;
    // (A multiple of 0.25 is exact as a double.)
    const auto c = d["c"].get<double>();
    EXPECT_TRUE(c >= -3 && c < 7.5 && std::floor(c * 4) == c * 4) << doc;
  }
  EXPECT_GT(completed, 100);
}

}  // namespace
}  // namespace cohost::runtime
