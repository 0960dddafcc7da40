#include "runtime/sampling/interned_schemas.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace cohost::runtime {
namespace {

using Json = nlohmann::json;

std::shared_ptr<const JsonSchema> Interned(InternedSchemas& table, const char* text) {
  absl::StatusOr<std::shared_ptr<const JsonSchema>> schema = table.Compile(Json::parse(text));
  EXPECT_TRUE(schema.ok()) << schema.status();
  return schema.ok() ? *schema : nullptr;
}

TEST(InternedSchemasTest, EqualSchemasShareOneCompiledSchema) {
  InternedSchemas table;
  const auto a = Interned(table, R"({"type": "object", "properties": {"x": {"type": "string"}}})");
  // The same grammar: other key order and spacing, and annotations.
  const auto b = Interned(table, R"({"properties":{"x":{"type":"string"}},"type":"object"})");
  const auto d = Interned(table, R"({"type": "object", "title": "T", "description": "long",
      "properties": {"x": {"type": "string", "description": "an x", "examples": ["a"]}}})");
  // Other grammars: another name, another limit, another type.
  const auto c = Interned(table, R"({"type": "object", "properties": {"y": {"type": "string"}}})");
  const auto e = Interned(table,
                          R"({"type": "object", "properties": {"x": {"type": "string",
                              "maxLength": 3}}})");
  const auto f = Interned(table, R"({"type": "object", "properties": {"x": {"type": "number"}}})");
  ASSERT_TRUE(a && b && c && d && e && f);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a.get(), d.get());
  EXPECT_NE(a.get(), c.get());
  EXPECT_NE(a.get(), e.get());
  EXPECT_NE(a.get(), f.get());
  EXPECT_EQ(table.size(), 4u);
}

// Past its cap of schemas held at once a new one is compiled unshared; once
// they are let go, schemas are shared again.
TEST(InternedSchemasTest, PastItsCapASchemaIsCompiledUnsharedUntilOthersAreLetGo) {
  InternedSchemas table(/*max_entries=*/8);
  auto numbered = [](int i) {
    return Json::parse(absl::StrCat(R"({"type": "string", "maxLength": )", i, "}"));
  };
  std::vector<std::shared_ptr<const JsonSchema>> held;
  for (int i = 0; i < 8; ++i) held.push_back(table.Compile(numbered(i)).value());
  EXPECT_EQ(table.size(), 8u);
  const auto ninth = table.Compile(numbered(8)).value();
  EXPECT_NE(table.Compile(numbered(8)).value(), ninth) << "not kept: the table is full";
  EXPECT_EQ(table.Compile(numbered(3)).value(), held[3]) << "the held ones are still shared";
  EXPECT_EQ(table.size(), 8u);
  held.clear();
  const auto again = table.Compile(numbered(8)).value();
  EXPECT_EQ(table.Compile(numbered(8)).value(), again);
  EXPECT_EQ(table.size(), 1u);
}

TEST(InternedSchemasTest, ASchemaNothingHoldsIsCompiledAnew) {
  InternedSchemas table;
  const char* text = R"({"type": "array", "items": {"type": "integer"}})";
  std::weak_ptr<const JsonSchema> first = Interned(table, text);
  EXPECT_TRUE(first.expired());
  const auto again = Interned(table, text);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(table.size(), 1u);
  // Many schemas, each let go at once: the table does not keep them all.
  for (int i = 0; i < 1000; ++i) {
    const std::string t = absl::StrCat(R"({"type": "string", "maxLength": )", i, "}");
    ASSERT_TRUE(table.Compile(Json::parse(t)).ok());
  }
  EXPECT_LE(table.size(), 64u);
  EXPECT_EQ(Interned(table, text), again);
}

TEST(InternedSchemasTest, ACompileErrorIsReturnedEveryTime) {
  InternedSchemas table;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::shared_ptr<const JsonSchema>> bad =
        table.Compile(Json::parse(R"j({"type": "string", "pattern": "(?=a)"})j"));
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("pattern"));
  }
  EXPECT_EQ(table.size(), 0u);
}

TEST(InternedSchemasTest, ThreadsCompilingOneSchemaGetOne) {
  InternedSchemas table;
  std::vector<std::shared_ptr<const JsonSchema>> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got) {
    threads.emplace_back([&table, &g] {
      for (int i = 0; i < 50; ++i) {
        g = table.Compile(Json::parse(R"({"type": "object", "additionalProperties": true})"))
                .value();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g.get(), got[0].get());
}

}  // namespace
}  // namespace cohost::runtime
