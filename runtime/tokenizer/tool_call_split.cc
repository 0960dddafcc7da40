// The text/calls split of a tool-calling model's answer. See tool_call_split.h.

#include "runtime/tokenizer/tool_call_split.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "common/random_id.h"
#include "nlohmann/json.hpp"
#include "runtime/loader/loader_json.h"
#include "runtime/tokenizer/json_rewrite.h"
#include "runtime/tokenizer/tag_scan.h"

namespace cohost::runtime {
namespace {

// A JSON object's text, compact, keys in their order; nullopt if `text` is
// not one, or names a key twice (which two readers could take differently).
std::optional<std::string> CompactObject(std::string_view text) {
  const size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos || text[start] != '{') return std::nullopt;
  if (!ParseJsonStrict(absl::string_view(text.data(), text.size()), "arguments").ok()) {
    return std::nullopt;
  }
  return RewriteJson(text, JsonStyle::kCompact);
}

}  // namespace

std::string NewToolCallId() {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id.push_back(kChars[RandomId64() % (sizeof kChars - 1)]);
  return id;
}

bool ParseToolCallJson(std::string_view json, ParsedToolCall* call) {
  // The shape first (strict: a duplicate "name" would make two readers
  // disagree), then the arguments' text in the model's key order.
  absl::StatusOr<nlohmann::json> parsed =
      ParseJsonStrict(absl::string_view(json.data(), json.size()), "tool call");
  if (!parsed.ok() || !parsed->is_object()) return false;
  auto name = parsed->find("name");
  if (name == parsed->end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return false;
  }
  auto arguments = parsed->find("arguments");
  std::optional<std::string> text;
  if (arguments == parsed->end() || arguments->is_null()) {
    text = "{}";
  } else if (arguments->is_string()) {  // the arguments' text, as OpenAI's field is
    text = CompactObject(arguments->get_ref<const std::string&>());
  } else if (arguments->is_object()) {
    RewriteJsonValues(
        json, JsonStyle::kCompact,
        [](JsonPath path) { return path.size() == 1 && path[0].key == "arguments"; },
        [&](JsonPath, std::string value) { text = std::move(value); });
  }
  if (!text) return false;
  call->name = name->get<std::string>();
  call->arguments = *std::move(text);
  return true;
}

ToolCallSplitter ToolCallSplitter::Forced(std::string name, bool stream) {
  ToolCallSplitter s(stream);
  s.state_ = State::kForced;
  s.name_ = std::move(name);
  return s;
}

void ToolCallSplitter::Walk(std::string_view text, Parts* out) {
  // Each pass settles a run of text, or a block, or stops.
  while (true) {
    if (state_ == State::kBlock) {
      const size_t close = text.find(kToolCallClose, scanned_);
      if (stream_ && opening_ != CallOpening::kNone) {
        std::string_view body = text.substr(0, close);
        if (opening_ == CallOpening::kMore) OpenCall(&body, out);
        if (opening_ == CallOpening::kCall) {
          if (close == std::string_view::npos) {
            // A closing tag may start in the last bytes: they are held.
            const size_t keep = PartialTagSuffix(body, kToolCallClose);
            FeedArguments(body.substr(0, body.size() - keep), out);
            held_.assign(body.substr(body.size() - keep));
            scanned_ = 0;
            return;
          }
          FeedArguments(body, out);
          EndCall(out);
          text.remove_prefix(close + kToolCallClose.size());
          continue;
        }
      }
      if (close == std::string_view::npos) {
        held_.assign(text);
        // A closing tag may start in the last bytes: they are read again.
        scanned_ = held_.size() - std::min(held_.size(), kToolCallClose.size() - 1);
        return;
      }
      EndBlock(text.substr(0, close), /*closed=*/true, out);
      text.remove_prefix(close + kToolCallClose.size());
      continue;
    }
    if (after_call_) {
      while (!text.empty() && IsBlockSpace(text.front())) text.remove_prefix(1);
      if (text.empty()) return;
      after_call_ = false;
    }
    const size_t open = text.find(kToolCallOpen);
    if (open == std::string_view::npos) {
      // What may yet open a block stays: a tag's start, and the whitespace
      // before it (dropped if a call follows).
      size_t keep = PartialTagSuffix(text, kToolCallOpen);
      while (keep < text.size() && IsBlockSpace(text[text.size() - keep - 1])) ++keep;
      out->content.append(text.substr(0, text.size() - keep));
      held_.assign(text.substr(text.size() - keep));
      return;
    }
    size_t space = open;
    while (space > 0 && IsBlockSpace(text[space - 1])) --space;
    out->content.append(text.substr(0, space));
    space_ = std::string(text.substr(space, open - space));
    state_ = State::kBlock;
    scanned_ = 0;
    text.remove_prefix(open + kToolCallOpen.size());
  }
}

void ToolCallSplitter::EndBlock(std::string_view body, bool closed, Parts* out) {
  ParsedToolCall call{NewToolCallId(), {}, {}, calls_};
  if (ParseToolCallJson(body, &call)) {
    ++calls_;
    out->calls.push_back(std::move(call));
    after_call_ = true;
  } else {
    out->content.append(space_);
    out->content.append(kToolCallOpen);
    out->content.append(body);
    if (closed) out->content.append(kToolCallClose);
    after_call_ = false;
  }
  space_.clear();
  state_ = State::kText;
  opening_ = CallOpening::kMore;
}

void ToolCallSplitter::OpenCall(std::string_view* text, Parts* out) {
  std::string name;
  size_t start = 0;
  opening_ = MatchCallOpening(*text, &name, &start);
  if (opening_ != CallOpening::kCall) return;
  BeginCall(std::move(name), out);
  text->remove_prefix(start);
}

void ToolCallSplitter::BeginCall(std::string name, Parts* out) {
  out->calls.push_back({NewToolCallId(), std::move(name), {}, calls_++});
  opening_ = CallOpening::kCall;
  arguments_ = ObjectCompactor();
  tail_.clear();
}

void ToolCallSplitter::FeedArguments(std::string_view text, Parts* out) {
  if (!arguments_.done()) {
    std::string piece;
    text.remove_prefix(arguments_.Feed(text, &piece));
    if (!piece.empty()) {
      // The call's last piece in these parts takes it (its first, or one
      // given out before them).
      if (out->calls.empty()) out->calls.push_back({{}, {}, {}, calls_ - 1});
      out->calls.back().arguments += piece;
    }
  }
  tail_.append(text);
}

void ToolCallSplitter::EndCall(Parts* out) {
  std::string rest;
  for (const char c : tail_) {
    if (!IsBlockSpace(c)) rest.push_back(c);
  }
  if (!rest.empty() && rest != "}") out->content.append(tail_);
  tail_.clear();
  space_.clear();
  state_ = State::kText;
  opening_ = CallOpening::kMore;
  after_call_ = true;
}

ToolCallSplitter::Parts ToolCallSplitter::Push(std::string_view delta) {
  Parts out;
  if (state_ == State::kForced) {
    if (!stream_) {
      held_.append(delta);
    } else if (opening_ == CallOpening::kCall) {
      FeedArguments(delta, &out);
    } else if (!name_.empty()) {
      // The output is the arguments: the call opens with it.
      if (delta.empty()) return out;
      BeginCall(name_, &out);
      FeedArguments(delta, &out);
    } else {
      held_.append(delta);
      if (opening_ == CallOpening::kMore) {
        std::string_view text = held_;
        OpenCall(&text, &out);
        if (opening_ == CallOpening::kCall) {
          FeedArguments(text, &out);
          held_.clear();
        }
      }
    }
    return out;
  }
  const bool all_space = std::all_of(delta.begin(), delta.end(), IsBlockSpace);
  if (state_ == State::kText && all_space && (held_.empty() || IsBlockSpace(held_.back()))) {
    // Whitespace after whitespace settles nothing (a long run of it is not
    // read again at each delta).
    if (!after_call_) held_.append(delta);
    return out;
  }
  held_.append(delta);
  if (state_ == State::kBlock && (!stream_ || opening_ == CallOpening::kNone)) {
    if (held_.find(kToolCallClose, scanned_) == std::string::npos) {
      scanned_ = held_.size() - std::min(held_.size(), kToolCallClose.size() - 1);
      return out;
    }
  }
  walking_.swap(held_);
  held_.clear();
  Walk(walking_, &out);
  return out;
}

ToolCallSplitter::Parts ToolCallSplitter::Finish() {
  Parts out;
  const std::string held = std::exchange(held_, std::string());
  if (opening_ == CallOpening::kCall) {
    // A streamed call the output ends inside, or after. What is held is a
    // closing tag's start that never came: text of the arguments while they
    // are open; else the block's end, dropped.
    if (!arguments_.done()) FeedArguments(held, &out);
    EndCall(&out);
    return out;
  }
  switch (state_) {
    case State::kForced: {
      ParsedToolCall call{NewToolCallId(), name_, {}, calls_};
      bool made = false;
      if (name_.empty()) {
        made = ParseToolCallJson(held, &call);
      } else if (std::optional<std::string> arguments = CompactObject(held)) {
        call.arguments = *std::move(arguments);
        made = true;
      }
      if (made) {
        ++calls_;
        out.calls.push_back(std::move(call));
      } else {
        out.content = held;
      }
      break;
    }
    case State::kText:
      if (!after_call_) out.content = held;
      break;
    case State::kBlock:
      EndBlock(held, /*closed=*/false, &out);
      break;
  }
  state_ = State::kText;
  after_call_ = true;  // nothing more comes
  return out;
}

}  // namespace cohost::runtime
