#include "server/http/whole_reply.h"

#include <event2/buffer.h>
#include <event2/http.h>

#include "absl/strings/str_cat.h"

namespace cohost::server::http {

void SendWholeReply(evhttp_request* req, int code, const char* reason, std::string_view body) {
  if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length",
                      absl::StrCat(body.size()).c_str());
    evhttp_send_reply(req, code, reason, nullptr);
    return;
  }
  evbuffer* out = evbuffer_new();
  if (out == nullptr) {
    evhttp_send_error(req, HTTP_INTERNAL, nullptr);
    return;
  }
  evbuffer_add(out, body.data(), body.size());
  evhttp_send_reply(req, code, reason, out);
  evbuffer_free(out);
}

}  // namespace cohost::server::http
