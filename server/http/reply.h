// Sending whole HTTP replies with libevent: JSON bodies and OpenAI-style
// errors (with Retry-After on RESOURCE_EXHAUSTED). Loop thread only.
#pragma once

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"

struct evhttp_connection;
struct evhttp_request;

namespace cohost::server::http {

// Sends `body` with `status` and Content-Type application/json (to a HEAD,
// the headers alone: SendWholeReply); frees `req` (libevent does once the
// reply is written, or at once if the client left).
void SendJson(evhttp_request* req, int status, std::string_view body);

// The error body for `status` (never OK) with its HTTP status; RESOURCE_EXHAUSTED
// adds Retry-After: the pushback the status carries (scheduler::RetryPushback),
// else `default_pushback_ms`, rounded up to whole seconds; a 401 adds
// WWW-Authenticate: Bearer.
void SendError(evhttp_request* req, const absl::Status& status, int default_pushback_ms);

// 405 with the Allow header RFC 9110 requires (`allow`: "GET, HEAD",
// "POST") and an OpenAI-style error body.
void SendMethodNotAllowed(evhttp_request* req, const char* allow);

// The standard reason phrase of an HTTP status.
const char* ReasonPhrase(int status);

// The bytes of `conn`'s replies that evhttp holds and the kernel has not
// taken yet: past StreamLimits::max_backlog_bytes, a client that stopped
// reading.
size_t UnsentBytes(evhttp_connection* conn);

// Shuts `conn`'s socket both ways, for a client that stopped reading: evhttp
// then fails the connection and closes it (its close callback runs).
void ShutDown(evhttp_connection* conn);

}  // namespace cohost::server::http
