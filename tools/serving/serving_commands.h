// The subcommands that run models in this process. Each returns the process
// exit code.
#pragma once

namespace cohost::tools {

// cohost run --model PATH --prompt TEXT [...]: generate locally, streaming text.
int RunCommand(int argc, char** argv);
// cohost serve --model NAME=PATH [...] --port P --metrics-port M: the gRPC server.
int ServeCommand(int argc, char** argv);

}  // namespace cohost::tools
