// The `cohost-client` program: only the clients of a cohost server, linked
// without the engine, the kernels or a BLAS, for machines that drive load or
// query a server and run no model.

#include "tools/client/client_commands.h"
#include "tools/common/subcommands.h"

namespace {

constexpr cohost::tools::Subcommand kCommands[] = {
    {"generate", cohost::tools::GenerateCommand, "stream a generation from a server"},
    {"models", cohost::tools::ModelsCommand, "list a server's models"},
    {"bench", cohost::tools::BenchCommand, "load-test a server (TTFT, ITL, throughput)"},
};

}  // namespace

int main(int argc, char** argv) {
  return cohost::tools::DispatchSubcommand("cohost-client", kCommands, argc, argv);
}
