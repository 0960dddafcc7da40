// AcceptWatch on a listening socket nobody accepts on: its queue (read from
// /proc/net/tcp) holds the connection, and past the timeout the port is
// not accepting; accepted, it is again.

#include "server/accept_watch.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "gtest/gtest.h"
#include "tests/support/loopback.h"
#include "tests/support/wait_for.h"

namespace cohost::server {
namespace {

using std::chrono::milliseconds;

TEST(AcceptWatchTest, AQueueThatStaysFullPastTheTimeoutIsNotAccepting) {
  int port = 0;
  const int listener = testing::ListenLoopback(&port);
  ASSERT_GE(listener, 0);
  ASSERT_EQ(ListenBacklog(port), 0);
  {
    // A port bound but not listened on has no queue.
    const int bound = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::bind(bound, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::getsockname(bound, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    EXPECT_EQ(ListenBacklog(ntohs(addr.sin_port)), std::nullopt);
    ::close(bound);
  }

  const int client = testing::ConnectLoopback(port);
  ASSERT_GE(client, 0);
  EXPECT_TRUE(testing::WaitFor([&] { return ListenBacklog(port) == 1; }, std::chrono::seconds(5)));

  AcceptWatch watch(port, milliseconds(200));
  const auto start = AcceptWatch::Clock::now();
  EXPECT_TRUE(watch.Update(start)) << "waiting, not yet for the timeout";
  EXPECT_TRUE(watch.Update(start + milliseconds(150)));
  EXPECT_FALSE(watch.Update(start + milliseconds(250)));
  EXPECT_FALSE(watch.accepting());

  const int accepted = ::accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  EXPECT_TRUE(watch.Update(start + milliseconds(300))) << "the queue is empty again";
  EXPECT_TRUE(watch.accepting());
  for (int fd : {accepted, client, listener}) ::close(fd);
}

// A queue that never empties but shrinks has someone accepting from it.
TEST(AcceptWatchTest, AQueueThatShrinksIsBeingAccepted) {
  int port = 0;
  const int listener = testing::ListenLoopback(&port);
  ASSERT_GE(listener, 0);
  const int a = testing::ConnectLoopback(port);
  const int b = testing::ConnectLoopback(port);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_TRUE(testing::WaitFor([&] { return ListenBacklog(port) == 2; }, std::chrono::seconds(5)));
  AcceptWatch watch(port, milliseconds(200));
  const auto start = AcceptWatch::Clock::now();
  EXPECT_TRUE(watch.Update(start));
  const int accepted = ::accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  EXPECT_TRUE(watch.Update(start + milliseconds(150)));  // 1 left: the clock is reset...
  EXPECT_TRUE(watch.Update(start + milliseconds(300)));  // ...and starts again here
  EXPECT_TRUE(watch.Update(start + milliseconds(450)));
  EXPECT_FALSE(watch.Update(start + milliseconds(550)));
  for (int fd : {accepted, a, b, listener}) ::close(fd);
}

}  // namespace
}  // namespace cohost::server
