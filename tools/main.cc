// The `cohost` program: dispatches to subcommands.

#include <cstdio>
#include <cstring>

#include "tools/commands.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* help;
};

constexpr Command kCommands[] = {
    {"run", cohost::tools::RunCommand, "generate text locally from a model file"},
    {"serve", cohost::tools::ServeCommand, "serve models over gRPC, with /metrics"},
    {"generate", cohost::tools::GenerateCommand, "stream a generation from a server"},
    {"models", cohost::tools::ModelsCommand, "list a server's models"},
    {"bench", cohost::tools::BenchCommand, "load-test a server (TTFT, ITL, throughput)"},
};

void PrintUsage() {
  std::fputs("usage: cohost <command> [flags]   (cohost <command> --help for its flags)\n\n"
             "commands:\n",
             stderr);
  for (const Command& c : kCommands) std::fprintf(stderr, "  %-9s %s\n", c.name, c.help);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    PrintUsage();
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) == 0) return c.run(argc - 2, argv + 2);
  }
  std::fprintf(stderr, "cohost: unknown command '%s'\n", argv[1]);
  PrintUsage();
  return 2;
}
