// Entry points of the `cohost` subcommands; each returns the process exit code.
#pragma once

namespace cohost::tools {

// cohost run --model PATH --prompt TEXT [...]: generate locally, streaming text.
int RunCommand(int argc, char** argv);
// cohost serve --model NAME=PATH [...] --port P --metrics-port M: the gRPC server.
int ServeCommand(int argc, char** argv);
// cohost generate --server ADDR --model NAME --prompt TEXT [...]: a streaming client.
int GenerateCommand(int argc, char** argv);
// cohost models --server ADDR: list the server's models.
int ModelsCommand(int argc, char** argv);
// cohost bench --server ADDR --model NAME [...]: the load generator.
int BenchCommand(int argc, char** argv);

}  // namespace cohost::tools
