// placeholder: being written
#include <cstdio>

#include "tools/commands.h"

namespace cohost::tools {
int BenchCommand(int, char**) {
  std::fputs("cohost bench: not built yet\n", stderr);
  return 2;
}
}  // namespace cohost::tools
