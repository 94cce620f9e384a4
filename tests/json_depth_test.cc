// The nesting limit on every JSON input: the library's files (config.json, safetensors headers and
// index, tokenizer.json, tokenizer_config.json) and the CLI's (--call, --messages, JSONL inputs,
// render-chat's model files), at depths 10^2 .. 10^6, with arrays and objects, in fields that are
// used and fields that are not. The server's bodies are tested in server_fields_test.cc.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "llada2/config.h"
#include "llada2/error.h"
#include "llada2/json.h"
#include "llada2/safetensors.h"
#include "llada2/tokenizer.h"
#include "test_util.h"

namespace llada2::testing {
namespace {

namespace fs = std::filesystem;

const size_t kDepths[] = {100, 1000, 10000, 100000, 1000000};

// Whether `depth` levels, placed `prefix` levels down in a document, are within the limit.
bool accepted(size_t depth, size_t prefix) { return depth + prefix <= size_t(kMaxJsonDepth); }

bool is_depth_error(const std::string& message) { return message.find("deeper than 128 levels") != std::string::npos; }

// Runs `load`, which reads a document with a deep value `prefix` levels down, and checks that
// exactly the deep documents fail, with the depth error, and the others do not fail because of depth.
void expect_depth_checked(size_t depth, size_t prefix, const std::function<void()>& load, const std::string& what) {
  try {
    load();
    EXPECT_TRUE(accepted(depth, prefix)) << what << " depth " << depth << " was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(is_depth_error(e.what()), !accepted(depth, prefix)) << what << " depth " << depth << ": " << e.what();
  }
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

TEST(JsonDepth, LimitIsExact) {
  for (bool objects : {false, true}) {
    EXPECT_NO_THROW(parse_json(nested_json(kMaxJsonDepth, objects), "t"));
    EXPECT_NO_THROW(parse_ordered_json(nested_json(kMaxJsonDepth, objects), "t"));
    try {
      parse_json(nested_json(kMaxJsonDepth + 1, objects), "body.json");
      ADD_FAILURE() << "depth 129 accepted";
    } catch (const FileError& e) {
      EXPECT_EQ(e.path(), "body.json");
      EXPECT_TRUE(is_depth_error(e.what())) << e.what();
    }
  }
}

TEST(JsonDepth, BracketsInStringsDoNotCount) {
  const std::string deep_text = std::string(1000, '[') + std::string(1000, '{');
  const nlohmann::json j = parse_json(R"({"s": ")" + deep_text + R"(", "e": "\"[[[", "b": "\\"})", "t");
  EXPECT_EQ(j["s"], deep_text);
  EXPECT_EQ(j["e"], "\"[[[");
  EXPECT_EQ(j["b"], "\\");
  // After an escaped backslash the quote ends the string: the brackets that follow count.
  EXPECT_THROW(parse_json(R"(["\\", )" + nested_json(200, false) + "]", "t"), FileError);
}

TEST(JsonDepth, SyntaxErrorsStillReported) {
  try {
    parse_json("{\"a\": ", "x.json");
    ADD_FAILURE();
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("x.json: not valid JSON"), std::string::npos) << e.what();
  }
}

TEST(JsonDepth, ParseJsonAtEveryDepth) {
  for (size_t depth : kDepths)
    for (bool objects : {false, true}) {
      expect_depth_checked(
          depth, 0, [&] { parse_json(nested_json(depth, objects), "t"); }, "parse_json");
      expect_depth_checked(
          depth, 2, [&] { parse_ordered_json("{\"x\": [" + nested_json(depth, objects) + "]}", "t"); },
          "parse_ordered_json");
    }
}

TEST(JsonDepth, ConfigJson) {
  const std::string golden = read_file(data_path("models/tiny-a-f32/config.json"));
  ASSERT_EQ(golden.back() == '\n' ? golden[golden.size() - 2] : golden.back(), '}');
  const std::string head = golden.substr(0, golden.rfind('}'));
  for (size_t depth : kDepths)
    for (bool objects : {false, true})
      for (const char* key : {"x_unused", "rope_scaling"})
        expect_depth_checked(
            depth, 1,
            [&] {
              ModelConfig::from_json_text(head + ", \"" + key + "\": " + nested_json(depth, objects) + "}", "c.json");
            },
            std::string("config.json ") + key);
}

TEST(JsonDepth, SafetensorsHeaderAndIndex) {
  const fs::path dir = fresh_temp_dir();
  for (size_t depth : kDepths)
    for (bool objects : {false, true}) {
      const std::string header = "{\"__metadata__\": {\"x\": \"y\"}, \"x\": " + nested_json(depth, objects) + "}";
      std::string image(8, '\0');
      for (int i = 0; i < 8; ++i) image[size_t(i)] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
      image += header;
      expect_depth_checked(
          depth, 1,
          [&] {
            SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "h.safetensors");
          },
          "safetensors header");
      write(dir / "model.safetensors.index.json",
            "{\"weight_map\": {}, \"metadata\": " + nested_json(depth, objects) + "}");
      expect_depth_checked(
          depth, 1, [&] { Checkpoint c(dir.string()); }, "safetensors index");
    }
}

TEST(JsonDepth, TokenizerFiles) {
  const fs::path dir = fresh_temp_dir();
  const std::string tok = read_file(data_path("tok/ling-synth/tokenizer.json"));
  const std::string cfg = read_file(data_path("tok/ling-synth/tokenizer_config.json"));
  const std::string tok_head = tok.substr(0, tok.find('{') + 1), tok_tail = tok.substr(tok.find('{') + 1);
  const std::string cfg_head = cfg.substr(0, cfg.find('{') + 1), cfg_tail = cfg.substr(cfg.find('{') + 1);
  for (size_t depth : kDepths)
    for (bool objects : {false, true}) {
      // An unused key first, then the real file (the reader keeps the last of duplicate keys).
      write(dir / "tokenizer.json", tok_head + "\"x_unused\": " + nested_json(depth, objects) + "," + tok_tail);
      write(dir / "tokenizer_config.json", cfg);
      expect_depth_checked(
          depth, 1, [&] { Tokenizer::from_dir(dir.string()); }, "tokenizer.json unused");
      write(dir / "tokenizer.json", tok_head + "\"normalizer\": " + nested_json(depth, objects) + "," + tok_tail);
      expect_depth_checked(
          depth, 1, [&] { Tokenizer::from_file((dir / "tokenizer.json").string()); }, "tokenizer.json used");
      write(dir / "tokenizer.json", tok);
      write(dir / "tokenizer_config.json", cfg_head + "\"x_unused\": " + nested_json(depth, objects) + "," + cfg_tail);
      expect_depth_checked(
          depth, 1, [&] { Tokenizer::from_dir(dir.string()); }, "tokenizer_config.json");
    }
}

// The CLI: deep inputs end with exit code 2 and the depth error on stderr.
void expect_cli_depth_checked(size_t depth, size_t prefix, const std::string& args, const std::string& what) {
  std::string out, err;
  const int rc = run_cli(args, &out, &err);
  if (accepted(depth, prefix)) {
    EXPECT_FALSE(is_depth_error(err)) << what << " depth " << depth << ": " << err;
  } else {
    EXPECT_EQ(rc, 2) << what << " depth " << depth << ": " << err;
    EXPECT_TRUE(is_depth_error(err)) << what << " depth " << depth << ": " << err;
  }
}

TEST(JsonDepth, CliJsonlInputs) {
  const fs::path dir = fresh_temp_dir();
  const std::string model = chat_model_dir(), in = (dir / "in.jsonl").string();
  for (size_t depth : kDepths)
    for (bool objects : {false, true}) {
      const std::string deep = nested_json(depth, objects);
      write(in, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\", \"x\": " + deep + "}]}\n");
      expect_cli_depth_checked(depth, 3, "render-chat --model " + model + " --input " + in, "render-chat message");
      write(in,
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\", "
            "\"function\": {\"name\": \"f\", \"parameters\": " +
                deep + "}}]}\n");
      expect_cli_depth_checked(depth, 4, "render-chat --model " + model + " --input " + in, "render-chat tools");
      write(in, "{\"text\": \"hi\", \"x\": " + deep + "}\n");
      expect_cli_depth_checked(depth, 1, "tokenize --model " + model + " --input " + in, "tokenize");
      write(in, "{\"ids\": [1, 2], \"x\": " + deep + "}\n");
      expect_cli_depth_checked(depth, 1, "detokenize --model " + model + " --input " + in, "detokenize");
    }
}

TEST(JsonDepth, CliRenderChatModelFiles) {
  const fs::path dir = fresh_temp_dir();
  const std::string cfg = read_file(fs::path(chat_model_dir()) / "tokenizer_config.json");
  const std::string head = cfg.substr(0, cfg.find('{') + 1), tail = cfg.substr(cfg.find('{') + 1);
  write(dir / "in.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
  const std::string args = "render-chat --model " + dir.string() + " --input " + (dir / "in.jsonl").string();
  for (size_t depth : kDepths)
    for (bool objects : {false, true}) {
      write(dir / "tokenizer_config.json", head + "\"x_unused\": " + nested_json(depth, objects) + "," + tail);
      fs::remove(dir / "special_tokens_map.json");
      expect_cli_depth_checked(depth, 1, args, "tokenizer_config.json");
      write(dir / "tokenizer_config.json", cfg);
      write(dir / "special_tokens_map.json", "{\"bos_token\": " + nested_json(depth, objects) + "}");
      expect_cli_depth_checked(depth, 1, args, "special_tokens_map.json");
    }
}

TEST(JsonDepth, CliGenerateFiles) {
  const fs::path dir = fresh_temp_dir();
  const std::string file = (dir / "in.json").string();
  // A model folder that does not exist: files within the limit get past parsing and fail there.
  const std::string gen = "generate --model " + (dir / "no-model").string();
  for (size_t depth : kDepths)
    for (bool objects : {false, true}) {
      write(file, "{\"gen_length\": 4, \"x\": " + nested_json(depth, objects) + "}");
      expect_cli_depth_checked(depth, 1, gen + " --call " + file, "--call");
      write(file, "[{\"role\": \"user\", \"content\": " + nested_json(depth, objects) + "}]");
      expect_cli_depth_checked(depth, 2, gen + " --messages " + file, "--messages");
    }
}

}  // namespace
}  // namespace llada2::testing
