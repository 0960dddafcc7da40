// Coalescing of queued stream output.

#include "server/delta_backlog.h"

#include <utility>

namespace cohost::server {

size_t DeltaBacklog::Bytes(const runtime::TokenDelta& d, size_t split_bytes) {
  size_t bytes = d.text.size() + split_bytes + d.token_ids.size() * sizeof(int32_t);
  // Each entry: an id and a logprob, for the chosen token and each alternative.
  for (const runtime::TokenLogprobs& l : d.logprobs) bytes += (1 + l.top.size()) * 8;
  return bytes;
}

namespace {

void AppendLogprobs(const runtime::TokenLogprobs& in, v1::Logprobs* out) {
  out->mutable_chosen()->set_token_id(in.chosen.id);
  out->mutable_chosen()->set_logprob(in.chosen.logprob);
  for (const runtime::TokenLogprob& t : in.top) {
    v1::TokenLogprob* p = out->add_top();
    p->set_token_id(t.id);
    p->set_logprob(t.logprob);
  }
}

// A call, or a streamed call's further piece: one that follows a piece of
// its call in the message joins it.
void AppendToolCall(const runtime::ParsedToolCall& c, v1::GenerateResponse* out) {
  const int n = out->tool_calls_size();
  if (c.id.empty() && n > 0 && out->tool_calls(n - 1).index() == static_cast<uint32_t>(c.index)) {
    out->mutable_tool_calls(n - 1)->mutable_arguments()->append(c.arguments);
    return;
  }
  v1::ToolCall* call = out->add_tool_calls();
  call->set_id(c.id);
  call->set_name(c.name);
  call->set_arguments(c.arguments);
  call->set_index(static_cast<uint32_t>(c.index));
}

}  // namespace

void DeltaBacklog::Push(runtime::TokenDelta delta, std::string reasoning,
                        std::vector<runtime::ParsedToolCall> calls) {
  size_t split_bytes = reasoning.size();
  for (const runtime::ParsedToolCall& c : calls) {
    split_bytes += c.id.size() + c.name.size() + c.arguments.size();
  }
  bytes_ += Bytes(delta, split_bytes) + kHeldBytes;
  entries_.push_back({std::move(delta), std::move(reasoning), std::move(calls), split_bytes});
}

void DeltaBacklog::TakeInto(v1::GenerateResponse* out, size_t max_bytes) {
  size_t taken = 0;
  while (!entries_.empty()) {
    const Entry& e = entries_.front();
    const runtime::TokenDelta& d = e.delta;
    const size_t b = Bytes(d, e.split_bytes);
    if (taken > 0 && taken + b > max_bytes) break;
    out->mutable_text()->append(d.text);
    out->mutable_reasoning()->append(e.reasoning);
    for (const runtime::ParsedToolCall& c : e.calls) AppendToolCall(c, out);
    out->mutable_token_ids()->Add(d.token_ids.begin(), d.token_ids.end());
    for (const runtime::TokenLogprobs& l : d.logprobs) AppendLogprobs(l, out->add_logprobs());
    taken += b;
    bytes_ -= b + kHeldBytes;
    entries_.pop_front();
  }
}

void DeltaBacklog::Clear() {
  entries_.clear();
  bytes_ = 0;
}

}  // namespace cohost::server
