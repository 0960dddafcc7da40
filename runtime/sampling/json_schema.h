// A JSON Schema compiled into what JsonGrammar holds a document to (OpenAI's
// `response_format: {"type": "json_schema"}`, vLLM's guided_json). The subset
// is the one generated schemas use (Pydantic's, OpenAI's strict mode), and
// every keyword outside it is refused by name rather than ignored: a
// document that looked held to a schema and was not would be worse than an
// error.
//
//   type            "object", "array", "string", "number", "integer",
//                   "boolean", "null", or a list of them
//   properties, required, additionalProperties (false or absent: no other
//                   keys, as OpenAI's strict mode has it; true or {}: any)
//   items, minItems, maxItems
//   minLength, maxLength (in characters)
//   pattern, format (string_pattern.h says which; not both, and with a
//                   maxLength only up to StringPattern::kMaxExactLength)
//   minimum, maximum, exclusiveMinimum, exclusiveMaximum (a number's to
//                   kMaxBoundDecimals decimals, fewer where one is large,
//                   an integer's whole: finer ones rounded in (an enum's
//                   values compared exactly); a bounded number is written
//                   without an exponent)
//   multipleOf      (json_number.h) on an integer, any (2.5 holds it to
//                   multiples of 5); on a number, a whole one (whose values
//                   are then written as integers) or one of up to
//                   kMaxBoundDecimals decimals (values written with no
//                   other digit past its decimals than 0); at most
//                   kMaxMultiple units
//   enum, const     of strings, numbers, booleans and null; with no type,
//                   the types of the values listed
//   anyOf, oneOf    alternatives that start differently (a string or null,
//                   an object or an array, ...): one of each kind at most,
//                   but for objects told apart by a tag: a property each
//                   requires, held to a string of its own (a const), which
//                   is written first (at most kMaxSchemaEnum of them)
//   allOf           of one schema
//   $ref            "#" or a JSON pointer after it into the schema
//                   ("#/$defs/NAME", "#/properties/a"; json_pointer.h;
//                   recursion allowed). A target is compiled once per $ref
//                   text, apart from where it stands: a place both
//                   referred to and in place counts twice toward the limits
// Annotations (title, description, default, examples, $schema, $id,
// $comment, deprecated, readOnly, writeOnly, OpenAPI's discriminator) are
// ignored. An object's
// properties may come in any order, each at most once.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"
#include "runtime/sampling/json_number.h"
#include "runtime/sampling/string_pattern.h"

namespace cohost::runtime {

// Bounds on what a client's schema may cost.
inline constexpr int32_t kMaxSchemaNodes = 1024;
inline constexpr int32_t kMaxSchemaProperties = 64;  // per object
inline constexpr int32_t kMaxSchemaEnum = 64;        // values per enum
inline constexpr int32_t kMaxSchemaPatterns = 64;    // patterns and formats
inline constexpr int32_t kMaxSchemaNameBytes = 255;  // a property name or enum string, encoded
inline constexpr int32_t kMaxSchemaDepth = 32;       // JsonGrammar's kMaxJsonDepth

using SchemaNodeId = uint16_t;

// What a value must be.
struct SchemaNode {
  enum class Kind : uint8_t {
    kAny,
    kObject,
    kArray,
    kString,
    kNumber,
    kInteger,
    kBoolean,
    kNull,
    kUnion,
    kAlias,  // a $ref: the node `target` stands here (JsonSchema::Resolve)
  };
  // How a value starts, which picks a union's alternative.
  enum Start : uint8_t {
    kStartObject,
    kStartArray,
    kStartString,
    kStartNumber,
    kStartBool,
    kStartNull,
    kStarts
  };
  static constexpr SchemaNodeId kNone = std::numeric_limits<SchemaNodeId>::max();

  Kind kind = Kind::kAny;
  // kObject: the properties' names as JSON writes them between the quotes,
  // and the node of each value; bit i of `required` for names[i].
  std::vector<std::string> names;
  std::vector<SchemaNodeId> values;
  uint64_t required = 0;
  bool additional = false;  // other keys allowed, any value
  // kObject standing for objects told apart by a tag: its one property
  // (written first) is a string of one option per variant, and once written
  // the object is variants[option] (JsonSchema::Compile's anyOf of objects).
  std::vector<SchemaNodeId> variants;
  // kArray.
  SchemaNodeId items = 0;
  uint32_t min_items = 0, max_items = std::numeric_limits<uint32_t>::max();
  // kString: the values allowed (encoded as names are); kNumber, kInteger
  // and kBoolean: their JSON texts. Empty: any.
  std::vector<std::string> options;
  uint32_t min_length = 0, max_length = std::numeric_limits<uint32_t>::max();
  // kString: its pattern (JsonSchema::pattern), kNoPattern for none.
  static constexpr uint16_t kNoPattern = std::numeric_limits<uint16_t>::max();
  uint16_t pattern = kNoPattern;
  // kNumber, kInteger without options (which the bounds have filtered).
  NumberBounds bounds;
  // kUnion: the alternative for each Start, kNone where none starts so.
  SchemaNodeId alternatives[kStarts] = {kNone, kNone, kNone, kNone, kNone, kNone};
  // kAlias.
  SchemaNodeId target = kNone;
  // The fewest containers deep a document of this node goes (0 for a
  // scalar); kUnbounded where none is finite.
  static constexpr uint16_t kUnbounded = std::numeric_limits<uint16_t>::max();
  uint16_t min_depth = 0;

  friend bool operator==(const SchemaNode&, const SchemaNode&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const SchemaNode& n) {
    h = H::combine(std::move(h), n.kind, n.names, n.values, n.required, n.additional, n.variants,
                   n.items, n.min_items, n.max_items, n.options, n.min_length, n.max_length,
                   n.pattern, n.bounds, n.target, n.min_depth);
    return H::combine_contiguous(std::move(h), n.alternatives, kStarts);
  }
};

class JsonSchema {
 public:
  // The nodes every schema starts with.
  static constexpr SchemaNodeId kAnyValue = 0;
  static constexpr SchemaNodeId kAnyObject = 1;  // any keys, any values
  static constexpr SchemaNodeId kAnyArray = 2;

  // INVALID_ARGUMENT naming the keyword and where it is ("at
  // properties.tags.items: ..."); of the schema's text only keys, type
  // names, required names and $ref paths, each quoted and cut (Quote).
  static absl::StatusOr<JsonSchema> Compile(const nlohmann::json& schema);
  // Any JSON object: what `response_format: {"type": "json_object"}` asks.
  static const JsonSchema& AnyObject();

  SchemaNodeId root() const { return root_; }
  const SchemaNode& node(SchemaNodeId id) const { return nodes_[id]; }
  // The node `id` stands for: itself, or what its references lead to.
  SchemaNodeId Resolve(SchemaNodeId id) const {
    while (nodes_[id].kind == SchemaNode::Kind::kAlias) id = nodes_[id].target;
    return id;
  }
  int32_t num_nodes() const { return static_cast<int32_t>(nodes_.size()); }
  const StringPattern& pattern(uint16_t i) const { return patterns_[i]; }

  // Equal schemas hold documents to the same grammar (what InternedSchemas
  // shares by): annotations, key order and spacing of the source aside.
  friend bool operator==(const JsonSchema&, const JsonSchema&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const JsonSchema& s) {
    return H::combine(std::move(h), s.nodes_, s.patterns_, s.root_);
  }

 private:
  JsonSchema();
  friend class SchemaCompiler;
  std::vector<SchemaNode> nodes_;
  std::vector<StringPattern> patterns_;
  SchemaNodeId root_ = kAnyObject;
};

}  // namespace cohost::runtime
