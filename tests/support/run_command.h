// Running one of the project's programs from a test through the shell, as a
// user would, and reading what it printed.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace cohost::testing {

struct CommandOutput {
  int exit_code = -1;  // -1: it did not exit normally (or could not start)
  std::string out;     // its stdout (stderr too where `cmd` redirects it there)
};

inline CommandOutput RunCommand(const std::string& cmd) {
  CommandOutput o;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) o.out.append(buf, n);
  const int status = pclose(p);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

}  // namespace cohost::testing
