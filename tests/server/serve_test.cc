// `cohost serve` as a process: it prints where it listens, serves /metrics,
// records each load's measured footprint in its footprint file, and on
// SIGTERM turns health NOT_SERVING, refuses new requests, lets live streams
// finish (or cancels them at the drain deadline) and exits 0.

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server/grpc_test_client.h"
#include "tests/support/loopback.h"
#include "tests/support/run_command.h"

extern char** environ;

namespace cohost {
namespace {

using ::cohost::testing::Generate;
using ::cohost::testing::HealthCheck;
using ::cohost::testing::StreamResult;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

// A `cohost serve` child with its stderr on a pipe.
class ServeProcess {
 public:
  // Its footprint record goes to a file of this process's own.
  // `load_gate`: a FIFO every load waits to read a byte from (COHOST_TEST_LOAD_GATE).
  explicit ServeProcess(int drain_seconds, const std::string& model_path = COHOST_DEFAULT_MODEL,
                        const std::string& load_gate = "")
      : footprint_file_(::testing::TempDir() + "serve_test_footprints_" +
                        std::to_string(::getpid()) + ".json") {
    std::remove(footprint_file_.c_str());
    int fds[2];
    if (::pipe(fds) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    const std::string model = "smol=" + model_path;
    const std::string drain = std::to_string(drain_seconds);
    std::vector<const char*> argv = {COHOST_BINARY,
                                     "serve",
                                     "--model",
                                     model.c_str(),
                                     "--host",
                                     "127.0.0.1",
                                     "--port",
                                     "0",
                                     "--metrics-port",
                                     "0",
                                     "--drain-seconds",
                                     drain.c_str(),
                                     "--footprint-file",
                                     footprint_file_.c_str(),
                                     nullptr};
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    if (!load_gate.empty()) env_strings.push_back("COHOST_TEST_LOAD_GATE=" + load_gate);
    std::vector<char*> env;
    for (std::string& e : env_strings) env.push_back(e.data());
    env.push_back(nullptr);
    if (posix_spawn(&pid_, COHOST_BINARY, &actions, nullptr, const_cast<char**>(argv.data()),
                    env.data()) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    err_fd_ = fds[0];
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exit_code_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (err_fd_ >= 0) ::close(err_fd_);
    std::remove(footprint_file_.c_str());
  }

  // Reads stderr until the "listening on" line; false on timeout or exit.
  bool WaitReady(seconds timeout) {
    const std::regex ready("listening on [^ ]*:([0-9]+) \\(metrics on [^ ]*:([0-9]+)\\)");
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      std::smatch m;
      if (std::regex_search(stderr_, m, ready)) {
        port_ = std::stoi(m[1]);
        metrics_port_ = std::stoi(m[2]);
        return true;
      }
      if (!ReadSome(milliseconds(200))) return false;
    }
    return false;
  }

  // Reads stderr until it holds `text`; false on timeout or exit.
  bool WaitForText(const std::string& text, seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (stderr_.find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() > end || !ReadSome(milliseconds(20))) return false;
    }
    return true;
  }

  // The exit code once the process exits within `timeout`.
  std::optional<int> WaitExit(seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        while (ReadSome(milliseconds(0))) {
        }
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_code_;
      }
      ReadSome(milliseconds(50));
    }
    return std::nullopt;
  }

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  const std::string& stderr_text() const { return stderr_; }
  const std::string& footprint_file() const { return footprint_file_; }

 private:
  // False at end of file.
  bool ReadSome(milliseconds wait) {
    pollfd p{err_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return true;
    char buf[4096];
    const ssize_t n = ::read(err_fd_, buf, sizeof buf);
    if (n <= 0) return false;
    stderr_.append(buf, static_cast<size_t>(n));
    return true;
  }

  const std::string footprint_file_;
  pid_t pid_ = -1;
  int err_fd_ = -1;
  std::string stderr_;
  int port_ = 0, metrics_port_ = 0;
  std::optional<int> exit_code_;
};

// GET path over plain HTTP/1.0; the whole response.
std::string HttpGet(int port, const std::string& path) {
  const int fd = testing::ConnectLoopback(port);
  if (fd < 0) return "";
  std::string out;
  if (testing::SendAll(fd, "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n")) {
    char buf[8192];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

v1::GenerateRequest Request(int max_tokens) {
  v1::GenerateRequest r;
  r.set_model("smol");
  r.set_text("Once upon a time");
  r.mutable_sampling()->set_temperature(0);
  r.set_max_tokens(max_tokens);
  r.set_ignore_eos(true);
  return r;
}

using ::cohost::testing::WaitFor;

// Streams `request` on its own thread, counting messages as they arrive.
struct LiveStream {
  LiveStream(v1::Inference::Stub& stub, const v1::GenerateRequest& request) {
    thread = std::thread([this, &stub, request] {
      grpc::ClientContext ctx;
      auto reader = stub.Generate(&ctx, request);
      v1::GenerateResponse msg;
      while (reader->Read(&msg)) {
        tokens += msg.token_ids_size();
        if (msg.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) finish = msg.finish_reason();
        ++messages;
      }
      status = reader->Finish();
    });
  }
  void Join() { thread.join(); }

  std::thread thread;
  std::atomic<int> messages{0};
  std::atomic<int> tokens{0};
  v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
  grpc::Status status;
};

std::shared_ptr<grpc::Channel> Channel(int port) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureChannelCredentials());
}

TEST(ServeTest, SigtermDrainsLiveStreamsAndExitsZero) {
  ServeProcess serve(/*drain_seconds=*/60);
  ASSERT_TRUE(serve.started());
  ASSERT_TRUE(serve.WaitReady(seconds(120))) << serve.stderr_text();
  auto channel = Channel(serve.port());
  auto stub = v1::Inference::NewStub(channel);
  EXPECT_EQ(HealthCheck(channel, "smol").value_or(-1), 1);

  LiveStream a(*stub, Request(24)), b(*stub, Request(24));
  ASSERT_TRUE(WaitFor([&] { return a.messages > 0 && b.messages > 0; }, seconds(60)));
  const std::string metrics = HttpGet(serve.metrics_port(), "/metrics");
  EXPECT_THAT(metrics, HasSubstr("cohost_time_to_first_token_seconds_count{model=\"smol\"}"));
  // The CPU kernels cpuid chose, named at start-up and in /metrics.
  EXPECT_THAT(serve.stderr_text(), HasSubstr("quantized kernels: "));
  EXPECT_THAT(serve.stderr_text(), HasSubstr("; 16-bit weights: "));
  EXPECT_THAT(metrics, HasSubstr("cohost_cpu_info{cpu="));
  EXPECT_THAT(metrics, ::testing::ContainsRegex(
                           "quant_kernels=\"(amx|avx512vnni|avx2|scalar)\",half_kernels=\"(amx|"
                           "avx512bf16|avx512|avx2|scalar)\"\\} 1"));

  ASSERT_EQ(::kill(serve.pid(), SIGTERM), 0);
  // Health flips first; new requests are refused while the live ones run on.
  EXPECT_TRUE(WaitFor([&] { return HealthCheck(channel, "").value_or(-1) == 2; }, seconds(10)));
  StreamResult refused = Generate(*stub, Request(1));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << refused.status.error_message();

  a.Join();
  b.Join();
  for (LiveStream* s : {&a, &b}) {
    EXPECT_TRUE(s->status.ok()) << s->status.error_message();
    EXPECT_EQ(s->tokens, 24);
    EXPECT_EQ(s->finish, v1::FINISH_REASON_LENGTH);
  }
  EXPECT_EQ(serve.WaitExit(seconds(30)), 0) << serve.stderr_text();
  EXPECT_THAT(serve.stderr_text(), HasSubstr("draining"));

  // The startup load was measured and recorded for the next start.
  std::ifstream record(serve.footprint_file());
  ASSERT_TRUE(record.good()) << serve.footprint_file();
  const nlohmann::json j = nlohmann::json::parse(record);
  ASSERT_EQ(j["footprints"].size(), 1u) << j.dump();
  const nlohmann::json& e = j["footprints"][0];
  EXPECT_EQ(e["path"], COHOST_DEFAULT_MODEL);
  // The CPU's default keeps the GGUF's blocks (--cpu-precision int8): the
  // weights take no more than the file.
  EXPECT_EQ(e["device"], "cpu/f32+stored");
  EXPECT_GT(e["weights_bytes"].get<int64_t>(), 50 << 20);
  EXPECT_LE(e["weights_bytes"].get<int64_t>(),
            static_cast<int64_t>(std::filesystem::file_size(COHOST_DEFAULT_MODEL)));
  EXPECT_GT(e["workspace_bytes"].get<int64_t>(), 0);
  EXPECT_GT(e["load_seconds"].get<double>(), 0);
}

// Started with the soft open-files limit many systems give (1024; here 256),
// the server raises it toward the hard limit: each connection holds one.
TEST(ServeTest, TheOpenFilesLimitIsRaisedTowardTheHardOne) {
  rlimit mine{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &mine), 0);
  if (mine.rlim_max != RLIM_INFINITY && mine.rlim_max <= 256) {
    GTEST_SKIP() << "the hard open-files limit is " << mine.rlim_max;
  }
  rlimit low = mine;
  low.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  ServeProcess serve(/*drain_seconds=*/5);  // inherits the low soft limit
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &mine), 0);
  ASSERT_TRUE(serve.started());
  ASSERT_TRUE(serve.WaitReady(seconds(120))) << serve.stderr_text();
  EXPECT_THAT(serve.stderr_text(), HasSubstr("open files limit raised from 256"));
  std::ifstream limits("/proc/" + std::to_string(serve.pid()) + "/limits");
  std::string line;
  uint64_t soft = 0;
  while (std::getline(limits, line)) {
    if (line.rfind("Max open files", 0) == 0) {
      soft = std::stoull(line.substr(std::string("Max open files").size()));
    }
  }
  const uint64_t want =
      mine.rlim_max == RLIM_INFINITY ? 65536 : std::min<uint64_t>(mine.rlim_max, 65536);
  EXPECT_EQ(soft, want);
  ASSERT_EQ(::kill(serve.pid(), SIGTERM), 0);
  EXPECT_EQ(serve.WaitExit(seconds(30)), 0) << serve.stderr_text();
}

// The stall timeout of a gRPC stream whose client stopped reading is the
// operator's: a flag, range-checked (the behaviour: backpressure_test.cc).
TEST(ServeTest, TheStreamStallTimeoutIsAFlagInRange) {
  for (const char* bad : {"0", "-1", "90000", "soon"}) {
    const std::string cmd = std::string(COHOST_BINARY) +
                            " serve --model smol=/nonexistent.gguf --port 0 --metrics-port 0 "
                            "--stream-stall-seconds " +
                            bad + " 2>&1";
    const testing::CommandOutput o = testing::RunCommand(cmd);
    const std::string& out = o.out;
    // 1: the value refused; an unknown flag would exit 2.
    EXPECT_EQ(o.exit_code, 1) << bad << ": " << out;
    EXPECT_THAT(out, HasSubstr("stream-stall-seconds")) << bad;
    EXPECT_THAT(out, Not(HasSubstr("unknown flag"))) << bad;
  }
}

// A model name given twice (two --model flags, or --model beside the
// configuration file's) is refused at start-up, naming where it was first;
// the second used to be dropped at its load while the memory plan counted it.
TEST(ServeTest, AModelNameGivenTwiceIsRefusedAtStartUp) {
  const std::string config = ::testing::TempDir() + "serve_test_twice.yaml";
  {
    std::ofstream out(config);
    out << "models:\n  - name: smol\n    path: /nonexistent.gguf\n";
  }
  struct Case {
    std::string flags, where;
  };
  for (const Case& c :
       {Case{"--model smol=/a.gguf --model smol=/b.gguf", "by an earlier --model"},
        Case{"--config " + config + " --model smol=/b.gguf", "in --config's file"}}) {
    const testing::CommandOutput o = testing::RunCommand(
        std::string(COHOST_BINARY) + " serve " + c.flags + " --port 0 --metrics-port 0 2>&1");
    EXPECT_EQ(o.exit_code, 1) << c.flags << ": " << o.out;
    EXPECT_THAT(o.out, HasSubstr("the name \"smol\" is already given " + c.where)) << c.flags;
  }
  std::remove(config.c_str());
}

// An empty --footprint-file is refused rather than read as "none".
TEST(ServeTest, AnEmptyFootprintFileIsRefused) {
  const testing::CommandOutput o =
      testing::RunCommand(std::string(COHOST_BINARY) +
                          " serve --model smol=/nonexistent.gguf --footprint-file= --port 0 "
                          "--metrics-port 0 2>&1");
  EXPECT_EQ(o.exit_code, 1) << o.out;
  EXPECT_THAT(o.out, HasSubstr("--footprint-file is empty"));
}

TEST(ServeTest, ASignalBeforeServingBeganEndsTheProcessAtOnce) {
  // The load waits on a FIFO nobody writes, for as long as the test likes,
  // as a slow disk's read would.
  const std::string fifo = ::testing::TempDir() + "serve_test_gate_" + std::to_string(::getpid());
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ServeProcess serve(/*drain_seconds=*/60, COHOST_DEFAULT_MODEL, fifo);
  ASSERT_TRUE(serve.started());
  // Printed once the signal thread runs, before the model's load begins.
  ASSERT_TRUE(serve.WaitForText("KV pool", seconds(60))) << serve.stderr_text();
  ASSERT_EQ(::kill(serve.pid(), SIGINT), 0);
  // Before, the signal waited for every load to end, then the server opened
  // its ports and drained nothing.
  EXPECT_EQ(serve.WaitExit(seconds(30)), 128 + SIGINT) << serve.stderr_text();
  EXPECT_THAT(serve.stderr_text(), HasSubstr("SIGINT before serving began"));
  EXPECT_THAT(serve.stderr_text(), Not(HasSubstr("listening on")));
  std::remove(fifo.c_str());
}

// A model file that is a FIFO (a tar archive may carry one into a model
// directory) is refused at once; it held the loading thread in open() until
// some writer came.
TEST(ServeTest, AFifoForAModelFileIsRefusedAtOnce) {
  const std::string fifo =
      ::testing::TempDir() + "serve_test_fifo_" + std::to_string(::getpid()) + ".gguf";
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ServeProcess serve(/*drain_seconds=*/60, fifo);
  ASSERT_TRUE(serve.started());
  EXPECT_EQ(serve.WaitExit(seconds(30)), 1) << serve.stderr_text();
  EXPECT_THAT(serve.stderr_text(), HasSubstr("not a regular file"));
  std::remove(fifo.c_str());
}

TEST(ServeTest, StreamsPastTheDrainDeadlineAreCancelledAndTheProcessExitsZero) {
  ServeProcess serve(/*drain_seconds=*/1);
  ASSERT_TRUE(serve.started());
  ASSERT_TRUE(serve.WaitReady(seconds(120))) << serve.stderr_text();
  auto stub = v1::Inference::NewStub(Channel(serve.port()));
  LiveStream s(*stub, Request(1000));
  ASSERT_TRUE(WaitFor([&] { return s.messages > 0; }, seconds(60)));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(serve.pid(), SIGTERM), 0);
  s.Join();
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNAVAILABLE) << s.status.error_message();
  EXPECT_GT(s.tokens, 0);
  EXPECT_LT(s.tokens, 1000);
  EXPECT_EQ(serve.WaitExit(seconds(30)), 0) << serve.stderr_text();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(20));
}

}  // namespace
}  // namespace cohost
