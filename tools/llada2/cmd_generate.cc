#include "commands.h"
#include "llada2/error.h"

namespace llada2::cli {

int cmd_generate(int, char**) { throw InputError("generate: not available in this build yet"); }

}  // namespace llada2::cli
