// placeholder: being written
#include <cstdio>

#include "tools/commands.h"

namespace cohost::tools {
int ModelsCommand(int, char**) {
  std::fputs("cohost models: not built yet\n", stderr);
  return 2;
}
}  // namespace cohost::tools
