// README.md shows examples/generate/readme.cc verbatim: the program the install test builds against
// the installed package and runs, so the README's library example cannot rot.
#include <gtest/gtest.h>

#include "test_util.h"

namespace llada2::testing {
namespace {

TEST(Readme, LibraryExampleIsTheBuiltProgram) {
  const std::string root = data_path("../..");
  const std::string readme = read_file(root + "/README.md");
  const std::string program = read_file(root + "/examples/generate/readme.cc");
  ASSERT_FALSE(program.empty());
  EXPECT_NE(readme.find("```cpp\n" + program + "```\n"), std::string::npos)
      << "README.md must show examples/generate/readme.cc exactly, in a ```cpp block";
}

}  // namespace
}  // namespace llada2::testing
