// A program made of subcommands (`cohost serve ...`, `cohost-client bench ...`):
// the table and the dispatch over argv, shared by both programs.
#pragma once

#include "absl/types/span.h"

namespace cohost::tools {

struct Subcommand {
  const char* name;
  int (*run)(int argc, char** argv);  // flags after the subcommand's name; exit code
  const char* help;
};

// Runs the subcommand argv[1] names with the arguments after it. Usage on
// stderr and exit code 2 for a missing or unknown name; 0 for --help.
int DispatchSubcommand(const char* program, absl::Span<const Subcommand> commands, int argc,
                       char** argv);

}  // namespace cohost::tools
