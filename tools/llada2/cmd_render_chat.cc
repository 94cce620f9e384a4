#include "commands.h"
#include "llada2/error.h"

namespace llada2::cli {

int cmd_render_chat(int, char**) { throw InputError("render-chat: needs a chat template engine (not available in this build yet)"); }

}  // namespace llada2::cli
