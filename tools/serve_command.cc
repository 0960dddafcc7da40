// placeholder: being written
#include <cstdio>

#include "tools/commands.h"

namespace cohost::tools {
int ServeCommand(int, char**) {
  std::fputs("cohost serve: not built yet\n", stderr);
  return 2;
}
}  // namespace cohost::tools
