// placeholder: being written
#include <cstdio>

#include "tools/commands.h"

namespace cohost::tools {
int GenerateCommand(int, char**) {
  std::fputs("cohost generate: not built yet\n", stderr);
  return 2;
}
}  // namespace cohost::tools
