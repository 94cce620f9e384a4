#include "default_model.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "llada2/error.h"

#ifndef LLADA2_SOURCE_MODELS
#define LLADA2_SOURCE_MODELS ""
#endif
#ifndef LLADA2_INSTALL_MODELS
#define LLADA2_INSTALL_MODELS ""
#endif

namespace llada2::cli {

namespace fs = std::filesystem;

std::vector<std::string> demo_model_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("LLADA2_MODEL"); env && *env) out.emplace_back(env);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path bin = exe.parent_path();
    out.push_back((bin / ".." / "share" / "llada2" / "models" / "llada2-demo").lexically_normal().string());
    out.push_back((bin / ".." / "models" / "llada2-demo").lexically_normal().string());
  }
  if (*LLADA2_INSTALL_MODELS) out.push_back(std::string(LLADA2_INSTALL_MODELS) + "/llada2-demo");
  if (*LLADA2_SOURCE_MODELS) out.push_back(std::string(LLADA2_SOURCE_MODELS) + "/llada2-demo");
  return out;
}

std::string resolve_model_dir(const std::string& dir, const char* command) {
  if (!dir.empty()) return dir;
  const auto candidates = demo_model_candidates();
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(fs::path(c) / "config.json", ec)) {
      std::fprintf(stderr, "%s: no --model given, using the demo model %s\n", command, c.c_str());
      return c;
    }
  }
  std::string looked;
  for (const auto& c : candidates) looked += "\n  " + c;
  throw InputError(std::string("no --model given and the demo model was not found; looked in:") + looked +
                   "\n(pass --model DIR, or set LLADA2_MODEL)");
}

}  // namespace llada2::cli
