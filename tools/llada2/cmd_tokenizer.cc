#include "commands.h"
#include "llada2/error.h"

namespace llada2::cli {

int cmd_tokenize(int, char**) { throw InputError("tokenize: needs a tokenizer (not available in this build yet)"); }
int cmd_detokenize(int, char**) { throw InputError("detokenize: needs a tokenizer (not available in this build yet)"); }

}  // namespace llada2::cli
