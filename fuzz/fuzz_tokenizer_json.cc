// libFuzzer target: the input is a tokenizer.json. Loading must either succeed or throw InputError
// (FileError); a tokenizer that loads must encode and decode without crashing.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "llada2/error.h"
#include "llada2/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/llada2_fuzz_tokenizer_" + std::to_string(::getpid()) + ".json";
  static const int cleanup = std::atexit([] { std::remove(path.c_str()); });  // runs before path's destructor
  (void)cleanup;
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  } else {
    return 0;
  }
  static const char* kTexts[] = {"Hello  world!",          " <s> x</s>", "\xE6\x97\xA5\xE6\x9C\xAC e\xCC\x81 \xC3\xA9",
                                 "a1b22 333\t\n",          "",           "   ",
                                 "don't WE'LL \xC5\xBFtop"};
  try {
    llada2::Tokenizer t = llada2::Tokenizer::from_file(path);
    for (const char* s : kTexts) {
      for (bool special : {true, false}) {
        std::vector<int64_t> ids = t.encode(s, special);
        try {
          (void)t.decode(ids, false);
          (void)t.decode(ids, true);
        } catch (const llada2::InputError&) {
          // post-processor ids need not exist in the vocab
        }
      }
    }
    std::vector<int64_t> some;
    for (size_t i = 0; i < size && i < 16; ++i) some.push_back(data[i]);
    try {
      (void)t.decode(some, false);
    } catch (const llada2::InputError&) {}
    (void)t.vocab_size();
    (void)t.id_to_token(0);
  } catch (const llada2::InputError&) {}
  return 0;
}
