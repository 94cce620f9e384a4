// Generates from a checkpoint folder with the public API: `generate DIR [PROMPT] [--mask-token-id N]`.
// Without a prompt (or a tokenizer) it generates from token ids and prints them; a checkpoint whose
// config.json has no mask_token_id needs --mask-token-id.
#include <cstdio>
#include <optional>
#include <string>

#include "llada2/error.h"
#include "llada2/pipeline.h"
#include "llada2/runtime.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CHECKPOINT_DIR [PROMPT] [--mask-token-id N]\n", argv[0]);
    return 2;
  }
  std::string prompt;
  std::optional<int64_t> mask_id;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--mask-token-id" && i + 1 < argc)
      mask_id = std::stoll(argv[++i]);
    else
      prompt = argv[i];
  }
  try {
    llada2::runtime::set_threads(2);
    llada2::Pipeline pipe = llada2::Pipeline::from_pretrained(argv[1]);
    llada2::GenerateOptions call;
    call.gen_length = 16;
    call.block_length = 8;
    call.num_inference_steps = 8;
    call.mask_token_id = mask_id;
    if (!prompt.empty() && pipe.tokenizer()) {
      call.prompt = prompt;
    } else {
      call.input_ids = llada2::IdTensor::from_row({1, 2, 3, 4});
      call.output_type = "seq";
    }
    llada2::PipelineOutput out = pipe(call);
    if (out.texts) {
      std::printf("text: %s\n", (*out.texts)[0].c_str());
    } else {
      std::printf("sequence:");
      for (int64_t j = 0; j < out.sequences.cols; ++j) std::printf(" %lld", (long long)out.sequences.at(0, j));
      std::printf("\n");
    }
    std::printf("%lld forwards, %.1f tokens/s\n", (long long)out.stats.forwards, out.stats.tokens_per_second());
  } catch (const llada2::InputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
