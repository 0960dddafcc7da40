// Every cohost method is registered raw (WithRawCallbackMethod_*): gRPC's
// typed handlers answer bytes that do not parse as the request message with
// UNIMPLEMENTED, as if the method did not exist. Parsed here instead, they
// are INVALID_ARGUMENT, naming the message.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/proto_buffer_writer.h"
#include "server/grpc_status.h"

namespace cohost::server {

// `bytes` as a `Message`, or INVALID_ARGUMENT.
template <typename Message>
absl::StatusOr<Message> ParseMessage(const grpc::ByteBuffer& bytes) {
  Message message;
  grpc::ByteBuffer copy = bytes;  // shares the slices; Deserialize consumes it
  if (!grpc::SerializationTraits<Message>::Deserialize(&copy, &message).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the request is not a valid ",
                                                   Message::descriptor()->full_name(),
                                                   " (its string fields must be valid UTF-8)"));
  }
  return message;
}

template <typename Message>
grpc::ByteBuffer SerializeMessage(const Message& message) {
  grpc::ByteBuffer out;
  bool own_buffer = false;
  (void)grpc::SerializationTraits<Message>::Serialize(message, &out, &own_buffer);
  return out;
}

// Ends a raw unary call: with `status`, and `response` as its message when
// the status is OK.
template <typename Response>
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::Status& status, const Response& response,
                                      grpc::ByteBuffer* out) {
  if (status.ok()) *out = SerializeMessage(response);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace cohost::server
