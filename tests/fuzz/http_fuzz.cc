// What a network client can send the OpenAI HTTP port, as bytes on a
// connection: the input, then a pipelined health check that closes, then the
// end of the client's writing. The front door runs in the process (the tiny
// model, ChatML, CORS on, at most two requests prepared at once), so that
// the sanitizers watch its loop, its preparing threads and the engine as
// they answer. Whatever comes back starts with an HTTP/1.x status line, and
// the connection ends within the time a request may take.

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "server/auth/api_keys.h"
#include "server/http/http_front_door.h"
#include "server/metrics.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/server/tiny_router.h"
#include "tests/support/loopback.h"

namespace cohost::fuzz {
namespace {

constexpr std::string_view kChatMl =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";
constexpr std::string_view kSentinel =
    "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

struct Server {
  std::unique_ptr<testing::TinyRouter> tiny;
  server::ServerMetrics metrics;
  server::auth::ApiKeys keys;
  std::unique_ptr<server::http::HttpFrontDoor> door;
};

const Server& TheServer() {
  static Server* const s = [] {
    auto* made = new Server;
    runtime::TokenizerSpec spec = runtime::testing::MakeByteTokenizerSpec();
    spec.chat_template = kChatMl;
    absl::StatusOr<std::unique_ptr<testing::TinyRouter>> tiny =
        testing::MakeTinyRouterOn(kernels::MakeCpuBackend(1), spec, scheduler::RouterOptions{});
    FUZZ_CHECK(tiny.ok(), "%s", tiny.status().ToString().c_str());
    made->tiny = *std::move(tiny);
    made->keys = server::auth::ApiKeys::Parse("", "none").value();
    static const server::StreamDeps deps{made->tiny->router.get(), &made->metrics, &made->keys,
                                         server::StreamLimits{}};
    server::http::HttpOptions options;
    options.cors_origin = "*";
    options.request_timeout = std::chrono::seconds(10);
    absl::StatusOr<std::unique_ptr<server::http::HttpFrontDoor>> door =
        server::http::HttpFrontDoor::Start(deps, options);
    FUZZ_CHECK(door.ok(), "%s", door.status().ToString().c_str());
    made->door = *std::move(door);
    return made;
  }();
  return *s;
}

void Run(std::string_view input) {
  const int fd = testing::ConnectLoopback(TheServer().door->port());
  FUZZ_CHECK(fd >= 0, "cannot connect");
  std::string bytes(input);
  bytes += kSentinel;
  if (testing::SendAll(fd, bytes)) ::shutdown(fd, SHUT_WR);
  // Until the server closes: never, the request timeout and some.
  const auto start = std::chrono::steady_clock::now();
  const std::string reply =
      testing::ReadUntil(fd, std::string_view("\0\0never", 7), std::chrono::seconds(15));
  const auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  FUZZ_CHECK(took < std::chrono::seconds(15), "the connection was still open after 15 s");
  FUZZ_CHECK(reply.empty() || reply.rfind("HTTP/1.", 0) == 0, "a reply that is no HTTP: %.80s",
             reply.c_str());
}

}  // namespace
}  // namespace cohost::fuzz

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)cohost::fuzz::TheServer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cohost::fuzz::Run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
