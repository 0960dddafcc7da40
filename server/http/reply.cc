// Whole replies over evhttp.

#include "server/http/reply.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "scheduler/admission.h"
#include "server/http/openai_format.h"
#include "server/http/whole_reply.h"

namespace cohost::server::http {

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 429:
      return "Too Many Requests";
    case 499:
      return "Client Closed Request";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Internal Server Error";
  }
}

void SendJson(evhttp_request* req, int status, std::string_view body) {
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", "application/json");
  SendWholeReply(req, status, ReasonPhrase(status), body);
}

void SendError(evhttp_request* req, const absl::Status& status, int default_pushback_ms) {
  const int http_status = HttpStatusFor(status.code());
  if (const std::optional<std::chrono::milliseconds> pushback =
          scheduler::PushbackToSend(status, std::chrono::milliseconds(default_pushback_ms))) {
    const int64_t seconds = std::max<int64_t>(1, (pushback->count() + 999) / 1000);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
                      std::to_string(seconds).c_str());
  }
  // RFC 9110: a 401 names the scheme that would be accepted.
  if (http_status == 401) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
  }
  SendJson(req, http_status, ErrorBody(status));
}

void SendMethodNotAllowed(evhttp_request* req, const char* allow) {
  evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
  SendJson(req, 405, ErrorBody(absl::InvalidArgumentError(std::string("use ") + allow)));
}

size_t UnsentBytes(evhttp_connection* conn) {
  return evbuffer_get_length(bufferevent_get_output(evhttp_connection_get_bufferevent(conn)));
}

void ShutDown(evhttp_connection* conn) {
  ::shutdown(bufferevent_getfd(evhttp_connection_get_bufferevent(conn)), SHUT_RDWR);
}

}  // namespace cohost::server::http
