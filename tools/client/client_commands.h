// The client subcommands: they speak to a running server over gRPC and link
// neither the engine nor the kernels. Each returns the process exit code.
#pragma once

namespace cohost::tools {

// generate --server ADDR --model NAME --prompt TEXT [...]: a streaming client.
int GenerateCommand(int argc, char** argv);
// models --server ADDR: list the server's models.
int ModelsCommand(int argc, char** argv);
// bench --server ADDR --model NAME [...]: the load generator.
int BenchCommand(int argc, char** argv);

}  // namespace cohost::tools
