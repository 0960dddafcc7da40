#include "runtime/sampling/json_schema.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/quote.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "runtime/sampling/json_pointer.h"
#include "runtime/sampling/schema_values.h"

namespace cohost::runtime {

using Json = nlohmann::json;
using Kind = SchemaNode::Kind;

namespace {

constexpr std::string_view kAnnotations[] = {"title", "description", "default", "examples",
                                             "$schema", "$id", "$comment", "deprecated", "readOnly",
                                             "writeOnly", "$defs", "definitions",
                                             // OpenAPI's (Pydantic writes it beside a oneOf of
                                             // objects): the tag is found, not named.
                                             "discriminator"};

bool IsAnnotation(std::string_view key) {
  for (std::string_view a : kAnnotations) {
    if (key == a) return true;
  }
  return false;
}

// The keywords each type takes (besides "type" and the annotations).
std::vector<std::string_view> KeywordsOf(Kind kind) {
  switch (kind) {
    case Kind::kObject:
      return {"properties", "required", "additionalProperties"};
    case Kind::kArray:
      return {"items", "minItems", "maxItems"};
    case Kind::kString:
      return {"minLength", "maxLength", "pattern", "format", "enum", "const"};
    case Kind::kNumber:
    case Kind::kInteger:
      return {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
              "enum",    "const"};
    case Kind::kBoolean:
    case Kind::kNull:
      return {"enum", "const"};
    default:
      return {};
  }
}

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kObject:
      return "object";
    case Kind::kArray:
      return "array";
    case Kind::kString:
      return "string";
    case Kind::kNumber:
      return "number";
    case Kind::kInteger:
      return "integer";
    case Kind::kBoolean:
      return "boolean";
    case Kind::kNull:
      return "null";
    default:
      return "any";
  }
}

absl::StatusOr<Kind> KindNamed(const Json& name) {
  if (name.is_string()) {
    for (Kind kind : {Kind::kObject, Kind::kArray, Kind::kString, Kind::kNumber, Kind::kInteger,
                      Kind::kBoolean, Kind::kNull}) {
      if (name.get_ref<const std::string&>() == KindName(kind)) return kind;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("an unknown type ", Quote(name.dump())));
}

// A string as JSON writes it between its quotes.
std::string Encoded(const std::string& s) {
  const std::string quoted = Json(s).dump();
  return quoted.substr(1, quoted.size() - 2);
}

// Which ways a node's values may start.
void StartsOf(const SchemaNode& node, bool starts[SchemaNode::kStarts]) {
  switch (node.kind) {
    case Kind::kAny:
      for (int i = 0; i < SchemaNode::kStarts; ++i) starts[i] = true;
      return;
    case Kind::kObject:
      starts[SchemaNode::kStartObject] = true;
      return;
    case Kind::kArray:
      starts[SchemaNode::kStartArray] = true;
      return;
    case Kind::kString:
      starts[SchemaNode::kStartString] = true;
      return;
    case Kind::kNumber:
    case Kind::kInteger:
      starts[SchemaNode::kStartNumber] = true;
      return;
    case Kind::kBoolean:
      starts[SchemaNode::kStartBool] = true;
      return;
    case Kind::kNull:
      starts[SchemaNode::kStartNull] = true;
      return;
    case Kind::kUnion:
      for (int i = 0; i < SchemaNode::kStarts; ++i) {
        if (node.alternatives[i] != SchemaNode::kNone) starts[i] = true;
      }
      return;
    case Kind::kAlias:
      return;  // resolved by the caller
  }
}

}  // namespace

class SchemaCompiler {
 public:
  explicit SchemaCompiler(const Json& root) : root_(root), schema_() {}

  absl::StatusOr<JsonSchema> Run() {
    ASSIGN_OR_RETURN(schema_.root_, Compile(root_, "the schema"));
    RETURN_IF_ERROR(CheckAliases());
    FlattenAliases();
    for (size_t u = 0; u < unions_.size(); ++u) RETURN_IF_ERROR(ResolveUnion(u));
    RETURN_IF_ERROR(FindMinDepths());
    return std::move(schema_);
  }

 private:
  // Every chain of references reaches a schema: one that comes back to
  // itself (A is B, B is A) has none, and Resolve would never end.
  absl::Status CheckAliases() {
    const int32_t n = schema_.num_nodes();
    for (int32_t start = 0; start < n; ++start) {
      SchemaNodeId id = static_cast<SchemaNodeId>(start);
      for (int32_t hops = 0; schema_.nodes_[id].kind == Kind::kAlias; ++hops) {
        id = schema_.nodes_[id].target;
        if (id == SchemaNode::kNone || hops > n) {
          return Error("a $ref", "references that lead only to each other");
        }
      }
    }
    return absl::OkStatus();
  }

  // Every id that names an alias names its end instead: Resolve at
  // generation time takes one step, however long the chains were.
  void FlattenAliases() {
    const auto end = [&](SchemaNodeId& id) {
      if (id != SchemaNode::kNone) id = schema_.Resolve(id);
    };
    for (SchemaNode& node : schema_.nodes_) {
      for (SchemaNodeId& v : node.values) end(v);
      end(node.items);
      end(node.target);
    }
    end(schema_.root_);
  }

  // How many containers deep each node's shortest document goes (a
  // fixpoint: recursion makes the first guesses too deep). A node with no
  // finite document, or one deeper than kMaxJsonDepth at the root, is
  // refused; below the root the grammar starts no value that cannot close
  // within the limit, so a model is never held where nothing fits.
  absl::Status FindMinDepths() {
    std::vector<SchemaNode>& nodes = schema_.nodes_;
    for (SchemaNode& node : nodes) node.min_depth = SchemaNode::kUnbounded;
    // Children and targets mostly have higher ids than what names them:
    // from the top down, most schemas settle in a pass or two.
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t i = nodes.size(); i-- > 0;) {
        const uint16_t depth = MinDepth(nodes[i]);
        if (depth < nodes[i].min_depth) {
          nodes[i].min_depth = depth;
          changed = true;
        }
      }
    }
    const uint16_t root = nodes[schema_.Resolve(schema_.root_)].min_depth;
    if (root == SchemaNode::kUnbounded) {
      return Error("the schema", "no finite document satisfies it (a required recursion)");
    }
    if (root > kMaxSchemaDepth) {
      return Error("the schema",
                   absl::StrCat("its documents nest deeper than ", kMaxSchemaDepth, " containers"));
    }
    return absl::OkStatus();
  }

  uint16_t MinDepth(const SchemaNode& node) const {
    const auto of = [&](SchemaNodeId id) { return schema_.nodes_[id].min_depth; };
    const auto plus_one = [](uint16_t d) {
      return d == SchemaNode::kUnbounded ? d : static_cast<uint16_t>(std::min(d + 1, 1000));
    };
    switch (node.kind) {
      case Kind::kAlias:
        return of(node.target);
      case Kind::kUnion: {
        uint16_t best = SchemaNode::kUnbounded;
        for (const SchemaNodeId alt : node.alternatives) {
          if (alt != SchemaNode::kNone) best = std::min(best, of(alt));
        }
        return best;
      }
      case Kind::kObject: {
        uint16_t deepest = 0;
        // A tagged object is as deep as its shallowest variant (its tag
        // offers only the variants that fit where it is).
        if (!node.variants.empty()) {
          uint16_t shallowest = SchemaNode::kUnbounded;
          for (const SchemaNodeId v : node.variants) shallowest = std::min(shallowest, of(v));
          return shallowest;
        }
        for (size_t i = 0; i < node.names.size(); ++i) {
          if ((node.required >> i) & 1) deepest = std::max(deepest, of(node.values[i]));
        }
        return plus_one(deepest);
      }
      case Kind::kArray:
        return plus_one(node.min_items > 0 ? of(node.items) : 0);
      default:
        return 0;
    }
  }

  absl::Status Error(const std::string& where, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("json_schema at ", where, ": ", what));
  }

  // A reader's error, said where.
  template <typename T>
  absl::StatusOr<T> At(const std::string& where, absl::StatusOr<T> read) {
    if (!read.ok()) return Error(where, read.status().message());
    return read;
  }

  absl::StatusOr<SchemaNodeId> NewNode(const std::string& where) {
    if (schema_.num_nodes() >= kMaxSchemaNodes) {
      return Error(where, absl::StrCat("more than ", kMaxSchemaNodes, " schemas"));
    }
    schema_.nodes_.emplace_back();
    return static_cast<SchemaNodeId>(schema_.nodes_.size() - 1);
  }

  absl::StatusOr<SchemaNodeId> Compile(const Json& s, const std::string& where) {
    // Each new $ref compiles its target inside the frame that named it:
    // bounded here, so that no schema can exhaust the thread's stack.
    if (nesting_ >= kMaxNesting) {
      return Error(where, absl::StrCat("schemas nested (through $ref) deeper than ", kMaxNesting));
    }
    ++nesting_;
    absl::StatusOr<SchemaNodeId> id = CompileNested(s, where);
    --nesting_;
    return id;
  }

  absl::StatusOr<SchemaNodeId> CompileNested(const Json& s, const std::string& where) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return JsonSchema::kAnyValue;
      return Error(where, "false (no value) is not supported");
    }
    if (!s.is_object()) return Error(where, "a schema must be an object or true");
    if (const auto ref = s.find("$ref"); ref != s.end()) return CompileRef(s, *ref, where);
    for (const char* name : {"anyOf", "oneOf", "allOf"}) {
      if (const auto it = s.find(name); it != s.end())
        return CompileCombination(s, name, *it, where);
    }
    const auto type = s.find("type");
    if (type != s.end() && type->is_array()) return CompileTypeList(s, *type, where);
    Kind kind = Kind::kAny;
    if (type != s.end()) {
      absl::StatusOr<Kind> named = KindNamed(*type);
      if (!named.ok()) return Error(where, named.status().message());
      kind = *named;
    } else if (s.contains("enum") || s.contains("const")) {
      return CompileEnumTypes(s, where);
    } else if (s.contains("properties")) {
      kind = Kind::kObject;
    } else if (s.contains("items")) {
      kind = Kind::kArray;
    }
    return CompileKind(s, kind, where);
  }

  // One node of `kind` from the keywords of `s` that belong to it; any
  // other keyword is refused.
  // `checked`: the caller refused the other keywords already (a type list,
  // whose siblings take them); each node reads only its own.
  absl::StatusOr<SchemaNodeId> CompileKind(const Json& s, Kind kind, const std::string& where,
                                           bool checked = false) {
    const std::vector<std::string_view> allowed = KeywordsOf(kind);
    for (const auto& [key, value] : s.items()) {
      if (checked) break;
      if (key == "type" || IsAnnotation(key)) continue;
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        return Error(where, absl::StrCat("the keyword ", Quote(key), " is not supported",
                                         kind == Kind::kAny ? "" : " with type ", KindName(kind)));
      }
    }
    if (kind == Kind::kAny) return JsonSchema::kAnyValue;
    ASSIGN_OR_RETURN(const SchemaNodeId id, NewNode(where));
    schema_.nodes_[id].kind = kind;
    if (kind == Kind::kObject) RETURN_IF_ERROR(FillObject(s, id, where));
    if (kind == Kind::kArray) RETURN_IF_ERROR(FillArray(s, id, where));
    if (kind == Kind::kString) RETURN_IF_ERROR(FillString(s, id, where));
    if (kind == Kind::kNumber || kind == Kind::kInteger) RETURN_IF_ERROR(FillNumber(s, id, where));
    if (kind == Kind::kBoolean) {
      ASSIGN_OR_RETURN(const std::vector<Json> values, EnumValuesOf(s, kind, where));
      for (const Json& v : values) schema_.nodes_[id].options.push_back(v.dump());
    }
    if (kind == Kind::kNull) RETURN_IF_ERROR(EnumValuesOf(s, kind, where).status());
    return id;
  }

  // Those of `kind`; none where the schema lists no values, and an error
  // where it lists values but none of `kind`.
  absl::StatusOr<std::vector<Json>> EnumValuesOf(const Json& s, Kind kind,
                                                 const std::string& where) {
    ASSIGN_OR_RETURN(std::vector<Json> values, At(where, EnumValues(s)));
    if (values.empty()) return values;
    std::vector<Json> of_kind;
    for (Json& v : values) {
      if (IsOfKind(v, kind)) of_kind.push_back(std::move(v));
    }
    if (of_kind.empty()) {
      return Error(where, absl::StrCat("enum or const lists no ", KindName(kind), " value"));
    }
    return of_kind;
  }

  // An enum with no type: the types of its values, each holding its own.
  absl::StatusOr<SchemaNodeId> CompileEnumTypes(const Json& s, const std::string& where) {
    ASSIGN_OR_RETURN(const std::vector<Json> values, At(where, EnumValues(s)));
    Json types = Json::array();
    for (const Json& v : values) {
      const Json name = KindName(KindOf(v));
      if (std::find(types.begin(), types.end(), name) == types.end()) types.push_back(name);
    }
    return CompileTypeList(s, types, where);
  }

  absl::Status FillObject(const Json& s, SchemaNodeId id, const std::string& where) {
    std::vector<std::string> names;
    std::vector<SchemaNodeId> values;
    if (const auto props = s.find("properties"); props != s.end()) {
      if (!props->is_object()) return Error(where, "properties must be an object");
      if (props->size() > static_cast<size_t>(kMaxSchemaProperties)) {
        return Error(where, absl::StrCat("more than ", kMaxSchemaProperties, " properties"));
      }
      for (const auto& [name, value] : props->items()) {
        std::string encoded = Encoded(name);
        if (encoded.empty() || encoded.size() > static_cast<size_t>(kMaxSchemaNameBytes)) {
          return Error(where, absl::StrCat("a property name must be 1 to ", kMaxSchemaNameBytes,
                                           " bytes as JSON writes it"));
        }
        ASSIGN_OR_RETURN(const SchemaNodeId value_id,
                         Compile(value, absl::StrCat(where, ".properties.", Quote(name))));
        names.push_back(std::move(encoded));
        values.push_back(value_id);
      }
    }
    uint64_t required = 0;
    if (const auto req = s.find("required"); req != s.end()) {
      if (!req->is_array() || req->size() > names.size()) {
        return Error(where, "required must be a list of names from properties, each once");
      }
      for (const Json& name : *req) {
        if (!name.is_string()) return Error(where, "required must be a list of names");
        const std::string encoded = Encoded(name.get<std::string>());
        size_t i = 0;
        while (i < names.size() && names[i] != encoded) ++i;
        if (i == names.size()) {
          return Error(where, absl::StrCat("required names ", Quote(name.get<std::string>()),
                                           ", which is not in properties"));
        }
        required |= uint64_t{1} << i;
      }
    }
    bool additional = false;
    if (const auto extra = s.find("additionalProperties"); extra != s.end()) {
      if (extra->is_boolean()) {
        additional = extra->get<bool>();
      } else if (extra->is_object() && extra->empty()) {
        additional = true;
      } else {
        return Error(where, "additionalProperties must be true, false or {}");
      }
    }
    SchemaNode& node = schema_.nodes_[id];
    node.names = std::move(names);
    node.values = std::move(values);
    node.required = required;
    node.additional = additional;
    return absl::OkStatus();
  }

  absl::StatusOr<uint32_t> Count(const Json& s, const char* key, uint32_t absent,
                                 const std::string& where) {
    const auto it = s.find(key);
    if (it == s.end()) return absent;
    if (!it->is_number_unsigned() || it->get<uint64_t>() > std::numeric_limits<uint32_t>::max()) {
      return Error(where, absl::StrCat(key, " must be a non-negative integer"));
    }
    return static_cast<uint32_t>(it->get<uint64_t>());
  }

  absl::Status FillArray(const Json& s, SchemaNodeId id, const std::string& where) {
    SchemaNodeId items = JsonSchema::kAnyValue;
    if (const auto it = s.find("items"); it != s.end()) {
      ASSIGN_OR_RETURN(items, Compile(*it, absl::StrCat(where, ".items")));
    }
    ASSIGN_OR_RETURN(const uint32_t min_items, Count(s, "minItems", 0, where));
    ASSIGN_OR_RETURN(const uint32_t max_items,
                     Count(s, "maxItems", std::numeric_limits<uint32_t>::max(), where));
    if (min_items > max_items) return Error(where, "minItems is above maxItems");
    SchemaNode& node = schema_.nodes_[id];
    node.items = items;
    node.min_items = min_items;
    node.max_items = max_items;
    return absl::OkStatus();
  }

  absl::Status FillString(const Json& s, SchemaNodeId id, const std::string& where) {
    ASSIGN_OR_RETURN(const std::vector<Json> values, EnumValuesOf(s, Kind::kString, where));
    ASSIGN_OR_RETURN(const uint32_t min_length, Count(s, "minLength", 0, where));
    ASSIGN_OR_RETURN(const uint32_t max_length,
                     Count(s, "maxLength", std::numeric_limits<uint32_t>::max(), where));
    if (min_length > max_length) return Error(where, "minLength is above maxLength");
    if (!values.empty() && (min_length > 0 || s.contains("maxLength"))) {
      return Error(where, "enum or const with a length limit is not supported");
    }
    if ((s.contains("pattern") || s.contains("format")) &&
        schema_.patterns_.size() >= static_cast<size_t>(kMaxSchemaPatterns)) {
      return Error(where, absl::StrCat("more than ", kMaxSchemaPatterns, " patterns or formats"));
    }
    ASSIGN_OR_RETURN(std::optional<StringPattern> pattern, At(where, PatternOf(s)));
    std::vector<std::string> options;
    for (const Json& v : values) {
      // An enum's values that do not match its pattern are no values.
      const std::string& text = v.get_ref<const std::string&>();
      if (pattern && !pattern->Matches(text)) continue;
      std::string encoded = Encoded(text);
      if (encoded.size() > static_cast<size_t>(kMaxSchemaNameBytes)) {
        return Error(where, absl::StrCat("enum and const values must be at most ",
                                         kMaxSchemaNameBytes, " bytes as JSON writes them"));
      }
      options.push_back(std::move(encoded));
    }
    if (!values.empty() && options.empty()) {
      return Error(where, "no enum or const value matches the pattern or format");
    }
    SchemaNode& node = schema_.nodes_[id];
    if (pattern && options.empty()) {
      if (max_length != std::numeric_limits<uint32_t>::max() &&
          max_length > StringPattern::kMaxExactLength) {
        return Error(where, absl::StrCat("a maxLength above ", StringPattern::kMaxExactLength,
                                         " with a pattern or format is not supported"));
      }
      if (!pattern->EndsWithin(StringPattern::kStart, min_length, max_length)) {
        return Error(where, "no string of the pattern or format has a length within the limits");
      }
      node.pattern = static_cast<uint16_t>(schema_.patterns_.size());
      schema_.patterns_.push_back(*pattern);
    }
    node.options = std::move(options);
    node.min_length = min_length;
    node.max_length = max_length;
    return absl::OkStatus();
  }

  absl::Status FillNumber(const Json& s, SchemaNodeId id, const std::string& where) {
    const Kind kind = schema_.nodes_[id].kind;
    const bool integer = kind == Kind::kInteger;
    bool narrowed = false;
    ASSIGN_OR_RETURN(const NumberBounds bounds, At(where, NumberBoundsOf(s, integer, &narrowed)));
    ASSIGN_OR_RETURN(const std::vector<Json> values, EnumValuesOf(s, kind, where));
    // An enum's values are filtered by the bounds as written.
    if (values.empty() && !bounds.Satisfiable(integer)) {
      return Error(where, absl::StrCat("no ", KindName(kind),
                                       bounds.multiple != 0 ? " multiple of multipleOf" : "",
                                       " lies within the bounds",
                                       narrowed ? absl::StrCat(" held to ", kMaxBoundDecimals,
                                                               " decimals and 2^62 units")
                                                : ""));
    }
    std::vector<std::string> options;
    for (const Json& v : values) {
      if (WithinBounds(v, s)) options.push_back(v.dump());
    }
    if (!values.empty() && options.empty()) {
      return Error(where, "no enum or const value lies within the bounds");
    }
    SchemaNode& node = schema_.nodes_[id];
    node.options = std::move(options);
    if (node.options.empty()) node.bounds = bounds;
    // A number held to whole multiples is an integer (written as one).
    if (bounds.whole_multiples()) node.kind = Kind::kInteger;
    return absl::OkStatus();
  }

  // "type": [...]: one node per type, each with the keywords of its own
  // type (the others' are not refused: they belong to a sibling).
  absl::StatusOr<SchemaNodeId> CompileTypeList(const Json& s, const Json& types,
                                               const std::string& where) {
    // Each type once (a list of a type twice could never be told apart).
    if (types.empty() || types.size() > static_cast<size_t>(SchemaNode::kStarts) + 1) {
      return Error(where, "type must list 1 to 7 types");
    }
    for (size_t i = 0; i < types.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (types[i] == types[j]) return Error(where, "type lists a type twice");
      }
    }
    std::vector<SchemaNodeId> parts;
    std::vector<std::string_view> all_keywords;
    for (const Json& t : types) {
      absl::StatusOr<Kind> kind = KindNamed(t);
      if (!kind.ok()) return Error(where, kind.status().message());
      for (std::string_view k : KeywordsOf(*kind)) all_keywords.push_back(k);
    }
    for (const auto& [key, value] : s.items()) {
      if (key == "type" || IsAnnotation(key)) continue;
      if (std::find(all_keywords.begin(), all_keywords.end(), key) == all_keywords.end()) {
        return Error(where, absl::StrCat("the keyword ", Quote(key), " is not supported"));
      }
    }
    // Each type's node reads its own keywords from `s` itself (no copies).
    // Where an enum lists values, a type none of them has is no alternative.
    ASSIGN_OR_RETURN(const std::vector<Json> values, At(where, EnumValues(s)));
    for (const Json& t : types) {
      const Kind kind = *KindNamed(t);
      if (!values.empty() && std::none_of(values.begin(), values.end(),
                                          [&](const Json& v) { return IsOfKind(v, kind); })) {
        continue;
      }
      ASSIGN_OR_RETURN(const SchemaNodeId part, CompileKind(s, kind, where, true));
      parts.push_back(part);
    }
    if (parts.empty()) return Error(where, "enum or const lists no value of the types");
    return Union(parts, where);
  }

  absl::StatusOr<SchemaNodeId> CompileCombination(const Json& s, const char* name, const Json& list,
                                                  const std::string& where) {
    for (const auto& [key, value] : s.items()) {
      if (key != name && !IsAnnotation(key)) {
        return Error(
            where, absl::StrCat("the keyword ", Quote(key), " beside ", name, " is not supported"));
      }
    }
    // Alternatives must start differently (there are six ways to start),
    // but for objects told apart by a tag.
    if (!list.is_array() || list.empty() || list.size() > static_cast<size_t>(kMaxSchemaEnum)) {
      return Error(where, absl::StrCat(name, " must list 1 to ", kMaxSchemaEnum, " schemas"));
    }
    if (std::string_view(name) == "allOf") {
      if (list.size() != 1) return Error(where, "allOf of more than one schema is not supported");
      return Compile(list[0], absl::StrCat(where, ".allOf[0]"));
    }
    std::vector<SchemaNodeId> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      ASSIGN_OR_RETURN(const SchemaNodeId part,
                       Compile(list[i], absl::StrCat(where, ".", name, "[", i, "]")));
      parts.push_back(part);
    }
    return Union(parts, where);
  }

  // Alternatives told apart by their first byte. Which way each starts is
  // known once every reference is (a recursive schema's alternative may be
  // the schema being compiled): Run resolves them at the end.
  absl::StatusOr<SchemaNodeId> Union(const std::vector<SchemaNodeId>& parts,
                                     const std::string& where) {
    if (parts.size() == 1) return parts[0];
    ASSIGN_OR_RETURN(const SchemaNodeId id, NewNode(where));
    schema_.nodes_[id].kind = Kind::kUnion;
    unions_.push_back({id, parts, where});
    return id;
  }

  // Each union's alternative per start; a start claimed twice cannot be
  // told apart (the grammar reads ahead no further).
  absl::Status ResolveUnion(size_t u) {
    if (unions_[u].resolved) return absl::OkStatus();
    if (unions_[u].resolving) {
      return Error(unions_[u].where, "alternatives that are the same alternatives again");
    }
    unions_[u].resolving = true;
    SchemaNodeId alternatives[SchemaNode::kStarts] = {SchemaNode::kNone, SchemaNode::kNone,
                                                      SchemaNode::kNone, SchemaNode::kNone,
                                                      SchemaNode::kNone, SchemaNode::kNone};
    std::vector<SchemaNodeId> parts;
    std::vector<SchemaNodeId> objects;  // one alternative, or told apart by a tag
    for (const SchemaNodeId part : unions_[u].parts) {
      const SchemaNodeId resolved = schema_.Resolve(part);
      if (schema_.nodes_[resolved].kind == Kind::kObject) {
        objects.push_back(resolved);
      } else {
        parts.push_back(resolved);
      }
    }
    if (objects.size() == 1) parts.push_back(objects[0]);
    if (objects.size() > 1) {
      ASSIGN_OR_RETURN(const SchemaNodeId tagged, Tagged(objects, unions_[u].where));
      parts.push_back(tagged);
    }
    for (const SchemaNodeId resolved : parts) {
      for (size_t v = 0; v < unions_.size(); ++v) {
        if (unions_[v].id == resolved) RETURN_IF_ERROR(ResolveUnion(v));
      }
      const SchemaNode& p = schema_.nodes_[resolved];
      bool starts[SchemaNode::kStarts] = {};
      StartsOf(p, starts);
      for (int i = 0; i < SchemaNode::kStarts; ++i) {
        if (!starts[i]) continue;
        if (alternatives[i] != SchemaNode::kNone) {
          return Error(unions_[u].where,
                       "alternatives that can start the same way (two arrays, a number and an "
                       "integer, objects not told apart by a tag, ...) are not supported");
        }
        alternatives[i] = p.kind == Kind::kUnion ? p.alternatives[i] : resolved;
      }
    }
    SchemaNode& node = schema_.nodes_[unions_[u].id];
    for (int i = 0; i < SchemaNode::kStarts; ++i) node.alternatives[i] = alternatives[i];
    unions_[u].resolved = true;
    return absl::OkStatus();
  }

  // One object node for several told apart by a tag: the first property
  // that each requires and holds to a string of its own (a const).
  absl::StatusOr<SchemaNodeId> Tagged(const std::vector<SchemaNodeId>& objects,
                                      const std::string& where) {
    const std::vector<std::string> names = schema_.nodes_[objects[0]].names;
    for (const std::string& name : names) {
      std::vector<std::string> tags;
      for (const SchemaNodeId id : objects) {
        const SchemaNode& object = schema_.nodes_[id];
        const auto at = std::find(object.names.begin(), object.names.end(), name);
        const size_t i = at - object.names.begin();
        if (at == object.names.end() || ((object.required >> i) & 1) == 0) break;
        const SchemaNode& value = schema_.nodes_[schema_.Resolve(object.values[i])];
        if (value.kind != Kind::kString || value.options.size() != 1 ||
            std::find(tags.begin(), tags.end(), value.options[0]) != tags.end()) {
          break;
        }
        tags.push_back(value.options[0]);
      }
      if (tags.size() != objects.size()) continue;
      ASSIGN_OR_RETURN(const SchemaNodeId tag, NewNode(where));
      schema_.nodes_[tag].kind = Kind::kString;
      schema_.nodes_[tag].options = std::move(tags);
      ASSIGN_OR_RETURN(const SchemaNodeId id, NewNode(where));
      SchemaNode& tagged = schema_.nodes_[id];
      tagged.kind = Kind::kObject;
      tagged.names = {name};
      tagged.values = {tag};
      tagged.required = 1;
      tagged.variants = objects;
      return id;
    }
    return Error(where,
                 "objects as alternatives need a tag (a property each requires, held to a "
                 "string of its own: a const)");
  }

  absl::StatusOr<SchemaNodeId> CompileRef(const Json& s, const Json& ref,
                                          const std::string& where) {
    for (const auto& [key, value] : s.items()) {
      if (key != "$ref" && !IsAnnotation(key)) {
        return Error(where,
                     absl::StrCat("the keyword ", Quote(key), " beside $ref is not supported"));
      }
    }
    if (!ref.is_string()) return Error(where, "$ref must be a string");
    const std::string& path = ref.get_ref<const std::string&>();
    if (const auto it = refs_.find(path); it != refs_.end()) return it->second;
    const Json* target = PointerTarget(root_, path);
    if (target == nullptr) {
      return Error(where, absl::StrCat("$ref ", Quote(path),
                                       " points to nothing in this schema (\"#\" and a JSON "
                                       "pointer after it are taken)"));
    }
    // An alias, made before its schema is compiled, so that a reference
    // back to it from inside (a tree's children) finds it.
    // (Chains that never reach a schema are refused once all is compiled,
    // CheckAliases: a target may still be on its way here.)
    ASSIGN_OR_RETURN(const SchemaNodeId id, NewNode(where));
    schema_.nodes_[id].kind = Kind::kAlias;
    refs_[path] = id;
    ASSIGN_OR_RETURN(const SchemaNodeId compiled, Compile(*target, path));
    if (compiled == id) return Error(where, "$ref refers to itself");
    schema_.nodes_[id].target = compiled;
    return id;
  }

  struct PendingUnion {
    SchemaNodeId id;
    std::vector<SchemaNodeId> parts;
    std::string where;
    bool resolved = false;
    bool resolving = false;
  };

  static constexpr int kMaxNesting = 256;

  const Json& root_;
  JsonSchema schema_;
  std::vector<PendingUnion> unions_;
  int nesting_ = 0;
  absl::flat_hash_map<std::string, SchemaNodeId> refs_;  // kNone while being compiled
};

JsonSchema::JsonSchema() {
  nodes_.resize(3);
  nodes_[kAnyValue].kind = SchemaNode::Kind::kAny;
  nodes_[kAnyObject].kind = SchemaNode::Kind::kObject;
  nodes_[kAnyObject].additional = true;
  nodes_[kAnyArray].kind = SchemaNode::Kind::kArray;
  nodes_[kAnyArray].items = kAnyValue;
  nodes_[kAnyObject].min_depth = nodes_[kAnyArray].min_depth = 1;
}

absl::StatusOr<JsonSchema> JsonSchema::Compile(const nlohmann::json& schema) {
  return SchemaCompiler(schema).Run();
}

const JsonSchema& JsonSchema::AnyObject() {
  static const JsonSchema* any = new JsonSchema();
  return *any;
}

}  // namespace cohost::runtime
