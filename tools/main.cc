// The `cohost` program: the serving subcommands (run, serve) and, for
// convenience on a server machine, the clients too.

#include "tools/client/client_commands.h"
#include "tools/common/subcommands.h"
#include "tools/serving/serving_commands.h"

namespace {

constexpr cohost::tools::Subcommand kCommands[] = {
    {"run", cohost::tools::RunCommand, "generate text locally from a model file"},
    {"serve", cohost::tools::ServeCommand, "serve models over gRPC, with /metrics"},
    {"generate", cohost::tools::GenerateCommand, "stream a generation from a server"},
    {"models", cohost::tools::ModelsCommand, "list a server's models"},
    {"bench", cohost::tools::BenchCommand, "load-test a server (TTFT, ITL, throughput)"},
};

}  // namespace

int main(int argc, char** argv) {
  return cohost::tools::DispatchSubcommand("cohost", kCommands, argc, argv);
}
