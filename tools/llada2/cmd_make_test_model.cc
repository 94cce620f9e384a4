#include "commands.h"
#include "llada2/error.h"

namespace llada2::cli {

int cmd_make_test_model(int, char**) { throw InputError("make-test-model: not available in this build yet"); }

}  // namespace llada2::cli
