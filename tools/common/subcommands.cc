#include "tools/common/subcommands.h"

#include <cstdio>
#include <cstring>

namespace cohost::tools {
namespace {

void PrintUsage(const char* program, absl::Span<const Subcommand> commands) {
  std::fprintf(stderr,
               "usage: %s <command> [flags]   (%s <command> --help for its flags)\n\n"
               "commands:\n",
               program, program);
  for (const Subcommand& c : commands) std::fprintf(stderr, "  %-9s %s\n", c.name, c.help);
}

}  // namespace

int DispatchSubcommand(const char* program, absl::Span<const Subcommand> commands, int argc,
                       char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    PrintUsage(program, commands);
    return argc < 2 ? 2 : 0;
  }
  for (const Subcommand& c : commands) {
    if (std::strcmp(argv[1], c.name) == 0) return c.run(argc - 2, argv + 2);
  }
  std::fprintf(stderr, "%s: unknown command '%s'\n", program, argv[1]);
  PrintUsage(program, commands);
  return 2;
}

}  // namespace cohost::tools
