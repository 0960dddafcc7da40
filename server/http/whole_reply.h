// A whole reply over evhttp, the one rule every HTTP port (the OpenAI front
// door, /metrics) sends with. A HEAD gets the headers alone, with the
// Content-Length a GET would get: evhttp 2.1 would send the body after a
// HEAD's headers, and no length, which a keep-alive client reads as the start
// of its next reply. Loop thread only.
#pragma once

#include <string_view>

struct evhttp_request;

namespace cohost::server::http {

// Sends `body` (the caller has set its headers, Content-Type among them);
// frees `req` (libevent does once the reply is written, or at once if the
// client left).
void SendWholeReply(evhttp_request* req, int code, const char* reason, std::string_view body);

}  // namespace cohost::server::http
