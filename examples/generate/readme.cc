// One prompt through a checkpoint folder with the public API (the example of README.md, built and run
// by the tests): `readme [CHECKPOINT_DIR] [PROMPT]`.
#include <cstdio>
#include <string>

#include "llada2/error.h"
#include "llada2/pipeline.h"

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "models/llada2-demo";
  try {
    // config.json + *.safetensors, and tokenizer.json / tokenizer_config.json for text prompts
    llada2::Pipeline pipe = llada2::Pipeline::from_pretrained(dir);
    llada2::GenerateOptions o;  // fields named like the Python keyword arguments
    o.prompt = std::string(argc > 2 ? argv[2] : "What is 4821 + 739?");
    o.gen_length = 128;
    o.block_length = 32;
    o.threshold = 0.7;
    llada2::PipelineOutput out = pipe(o);  // out.sequences [B, gen_length], out.texts, out.stats
    std::printf("%s\n", (*out.texts)[0].c_str());
    std::printf("(%lld forwards, %.1f tokens/s)\n", (long long)out.stats.forwards, out.stats.tokens_per_second());
  } catch (const llada2::InputError& e) {  // bad arguments or files: the message says what and where
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}
