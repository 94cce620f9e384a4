#include "core/read_file.h"

#include <fstream>
#include <sstream>

#include "llada2/error.h"

namespace llada2 {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FileError(path, "cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw FileError(path, "read error");
  return ss.str();
}

}  // namespace llada2
