// The `cohost` program: dispatches to subcommands.

#include <cstdio>
#include <cstring>

#include "tools/commands.h"

namespace {

void PrintUsage() {
  std::fputs(
      "usage: cohost <command> [flags]\n\n"
      "commands:\n"
      "  run     generate text locally from a model file (--help for flags)\n",
      stderr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    PrintUsage();
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "run") == 0) return cohost::tools::RunCommand(argc - 2, argv + 2);
  std::fprintf(stderr, "cohost: unknown command '%s'\n", argv[1]);
  PrintUsage();
  return 2;
}
