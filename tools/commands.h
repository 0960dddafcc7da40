// Entry points of the `cohost` subcommands; each returns the process exit code.
#pragma once

namespace cohost::tools {

// cohost run --model PATH --prompt TEXT [...]: generate locally, streaming text.
int RunCommand(int argc, char** argv);

}  // namespace cohost::tools
