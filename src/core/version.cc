#include "llada2/version.h"

#include "llada2/runtime.h"
#include "llada2_revision.h"

namespace llada2 {

std::string version() { return LLADA2_VERSION_STRING; }
std::string git_revision() { return LLADA2_GIT_REVISION; }
std::string version_line() { return "llada2 " + version() + " (" + git_revision() + "), kernels: " + runtime::isa(); }

}  // namespace llada2
