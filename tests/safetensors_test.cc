// The safetensors reader and writer: round trips, sharded checkpoints, and malformed files.
#include <gtest/gtest.h>

#include "test_util.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "llada2/error.h"
#include "llada2/safetensors.h"
#include "llada2/safetensors_writer.h"

namespace fs = std::filesystem;
using llada2::Checkpoint;
using llada2::CheckpointWriter;
using llada2::DType;
using llada2::FileError;
using llada2::InputError;
using llada2::SafetensorsFile;
using llada2::SafetensorsWriter;
using llada2::TensorSpec;

namespace {

fs::path temp_dir() { return llada2::testing::fresh_temp_dir(); }
using llada2::testing::read_file;

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::vector<uint8_t> pattern(size_t n, uint8_t salt) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 31 + salt);
  return v;
}

// A safetensors image from a raw header text (not padded) and data bytes.
std::string image(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Parses an image and returns the FileError message (fails the test if it parses).
std::string parse_error(const std::string& bytes, const std::string& label = "bad.safetensors") {
  try {
    SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), label);
  } catch (const FileError& e) {
    EXPECT_EQ(e.path(), label);
    return e.what();
  }
  ADD_FAILURE() << "parsed without error";
  return "";
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

}  // namespace

TEST(SafetensorsWriter, RoundTripAllDtypes) {
  const fs::path dir = temp_dir();
  const std::vector<TensorSpec> specs = {{"f32", DType::F32, {3, 5}},    {"bf16", DType::BF16, {7}},
                                         {"f16", DType::F16, {2, 2, 2}}, {"i64", DType::I64, {4}},
                                         {"bool", DType::BOOL, {9}},     {"empty", DType::F32, {0, 4}},
                                         {"scalar", DType::F32, {}},     {"empty_bf16", DType::BF16, {0}}};
  const fs::path path = dir / "x.safetensors";
  std::map<std::string, std::vector<uint8_t>> data;
  {
    SafetensorsWriter w(path.string(), specs);
    ASSERT_EQ(w.tensors().size(), specs.size());
    for (size_t i = 1; i < w.tensors().size(); ++i) EXPECT_LT(w.tensors()[i - 1].name, w.tensors()[i].name);
    uint8_t salt = 1;
    for (const TensorSpec& t : w.tensors()) {
      std::vector<uint8_t> bytes = pattern(t.nbytes(), salt++);
      if (t.dtype == DType::BOOL)
        for (auto& b : bytes) b &= 1;
      // Stream in uneven pieces.
      size_t done = 0;
      while (done < bytes.size()) {
        size_t n = std::min<size_t>(3, bytes.size() - done);
        w.write(t.name, bytes.data() + done, n);
        done += n;
      }
      data[t.name] = bytes;
    }
    w.finish();
    EXPECT_EQ(w.file_size(), fs::file_size(path));
  }
  const std::string raw = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(raw[size_t(i)]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(raw.substr(8, 31), "{\"__metadata__\":{\"format\":\"pt\"}");

  SafetensorsFile f(path.string());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.tensors().size(), specs.size());
  for (const TensorSpec& s : specs) {
    const auto& t = f.tensors().at(s.name);
    EXPECT_EQ(t.dtype, s.dtype) << s.name;
    EXPECT_EQ(t.shape, s.shape) << s.name;
    ASSERT_EQ(t.nbytes, data[s.name].size()) << s.name;
    if (t.nbytes) {
      EXPECT_EQ(std::memcmp(t.data, data[s.name].data(), t.nbytes), 0) << s.name;
    }
    EXPECT_EQ(t.file, path.string());
  }
  EXPECT_EQ(f.tensors().at("scalar").numel(), 1);
  EXPECT_EQ(f.tensors().at("empty").numel(), 0);
  fs::remove_all(dir);
}

TEST(SafetensorsWriter, HeaderLayoutMatchesReferenceWriter) {
  // Byte for byte what Python's safetensors writes for these tensors.
  std::string h = llada2::safetensors_header({{"a", DType::F32, {2}}, {"b", DType::BF16, {1, 3}}});
  std::string json =
      "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,3],\"data_offsets\":[8,14]}}";
  json.append((8 - json.size() % 8) % 8, ' ');
  EXPECT_EQ(h, image(json));
  EXPECT_THROW(llada2::safetensors_header({{"b", DType::F32, {1}}, {"a", DType::F32, {1}}}), InputError);
  // Names are JSON-escaped.
  std::string q = llada2::safetensors_header({{"we\"ird\\name", DType::U8, {1}}}, {});
  EXPECT_HAS(q, "\"we\\\"ird\\\\name\"");
  auto parsed = SafetensorsFile::parse(reinterpret_cast<const uint8_t*>((q + "x").data()), q.size() + 1, "q");
  EXPECT_EQ(parsed.count("we\"ird\\name"), 1u);
}

TEST(SafetensorsWriter, RejectsMisuse) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "m.safetensors").string();
  const uint8_t buf[64] = {};
  EXPECT_THROW(SafetensorsWriter(path, {{"a", DType::F32, {1}}, {"a", DType::F32, {2}}}), InputError);
  EXPECT_THROW(SafetensorsWriter(path, {{"", DType::F32, {1}}}), InputError);
  EXPECT_THROW(SafetensorsWriter(path, {{"__metadata__", DType::F32, {1}}}), InputError);
  EXPECT_THROW(SafetensorsWriter(path, {{"bad\xff", DType::F32, {1}}}), InputError);
  EXPECT_THROW(SafetensorsWriter(path, {{"neg", DType::F32, {-1}}}), InputError);
  EXPECT_THROW(SafetensorsWriter((dir / "no" / "such" / "f").string(), {}), FileError);
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {2}}, {"b", DType::F32, {1}}});
    try {
      w.write("b", buf, 4);  // "a" comes first
      ADD_FAILURE();
    } catch (const InputError& e) {
      EXPECT_HAS(e.what(), "'a' has 0 of its 8 bytes");
    }
    w.write("a", buf, 4);
    try {
      w.write("a", buf, 8);
      ADD_FAILURE();
    } catch (const InputError& e) {
      EXPECT_HAS(e.what(), "more than its 8");
    }
    EXPECT_THROW(w.write("zzz", buf, 1), InputError);
  }
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {2}}, {"b", DType::F32, {1}}});
    w.write("a", buf, 8);
    try {
      w.finish();
      ADD_FAILURE();
    } catch (const InputError& e) {
      EXPECT_HAS(e.what(), "'b' got 0 of its 4 bytes");
    }
    w.write("b", buf, 4);
    EXPECT_THROW(w.write("a", buf, 1), InputError);  // out of order
    w.finish();
    EXPECT_THROW(w.write("b", buf, 1), InputError);  // after finish
  }
  EXPECT_TRUE(fs::exists(path));
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {2}}});
    w.write("a", buf, 4);
  }
  EXPECT_FALSE(fs::exists(path)) << "an unfinished file must not be left behind";
  fs::remove_all(dir);
}

namespace {

std::vector<TensorSpec> shard_specs() {
  return {{"t.a", DType::F32, {10}}, {"t.b", DType::BF16, {30}}, {"t.c", DType::F32, {100}},
          {"t.d", DType::I64, {2}},  {"t.e", DType::F32, {0}},   {"t.f", DType::U8, {7}}};
}

void write_all(CheckpointWriter& w) {
  uint8_t salt = 0;
  for (const TensorSpec& t : w.tensors()) {
    auto bytes = pattern(t.nbytes(), salt++);
    w.write(t.name, bytes.data(), bytes.size());
  }
  w.finish();
}

}  // namespace

TEST(CheckpointWriter, SingleFileBelowLimit) {
  const fs::path dir = temp_dir() / "ckpt";
  CheckpointWriter w(dir.string(), shard_specs(), 10000);
  ASSERT_EQ(w.files(), std::vector<std::string>{"model.safetensors"});
  write_all(w);
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  Checkpoint c(dir.string());
  EXPECT_EQ(c.tensors().size(), 6u);
  EXPECT_EQ(c.total_bytes(), w.total_tensor_bytes());
  EXPECT_EQ(w.total_tensor_bytes(), 40u + 60u + 400u + 16u + 0u + 7u);
  fs::remove_all(dir.parent_path());
}

TEST(CheckpointWriter, ShardsAboveLimit) {
  const fs::path dir = temp_dir();
  // 100 bytes per shard: t.a (40) + t.b (60) | t.c (400, alone and over the limit) | t.d + t.e + t.f.
  CheckpointWriter w(dir.string(), shard_specs(), 100);
  ASSERT_EQ(w.files(), (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                                 "model-00003-of-00003.safetensors"}));
  EXPECT_EQ(w.weight_map().at("t.b"), "model-00001-of-00003.safetensors");
  EXPECT_EQ(w.weight_map().at("t.c"), "model-00002-of-00003.safetensors");
  EXPECT_EQ(w.weight_map().at("t.e"), "model-00003-of-00003.safetensors");
  write_all(w);
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  auto index = nlohmann::json::parse(read_file(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 523);
  EXPECT_EQ(index["weight_map"].size(), 6u);
  EXPECT_EQ(index["weight_map"]["t.f"], "model-00003-of-00003.safetensors");

  Checkpoint c(dir.string());
  ASSERT_EQ(c.tensors().size(), 6u);
  uint8_t salt = 0;
  for (const auto& [name, t] : c.tensors()) {
    auto bytes = pattern(t.nbytes, salt++);
    if (t.nbytes) {
      EXPECT_EQ(std::memcmp(t.data, bytes.data(), t.nbytes), 0) << name;
    }
    EXPECT_EQ(fs::path(t.file).filename().string(), index["weight_map"][name].get<std::string>());
  }
  EXPECT_EQ(c.get("t.c").shape, std::vector<int64_t>{100});
  EXPECT_THROW(c.get("t.zz"), FileError);
  // Prefaulting reads every shard and reports its way to the total.
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  c.prefault([&](uint64_t done, uint64_t total) { calls.emplace_back(done, total); });
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back(), std::make_pair(uint64_t(523), uint64_t(523)));
  for (size_t i = 1; i < calls.size(); ++i) EXPECT_LE(calls[i - 1].first, calls[i].first);
  c.prefault();
  fs::remove_all(dir);
}

TEST(CheckpointWriter, RejectsMisuse) {
  const fs::path dir = temp_dir();
  const uint8_t buf[512] = {};
  EXPECT_THROW(CheckpointWriter(dir.string(), shard_specs(), 0), InputError);
  CheckpointWriter w(dir.string(), shard_specs(), 100);
  w.write("t.a", buf, 40);
  EXPECT_THROW(w.write("nope", buf, 1), InputError);
  EXPECT_THROW(w.write("t.c", buf, 400), InputError);  // t.b is missing from shard 1
  fs::remove_all(dir);
}

namespace {

// A sharded checkpoint with tensors a (shard 1) and b (shard 2), for corrupting.
fs::path two_shards() {
  fs::path dir = temp_dir();
  CheckpointWriter w(dir.string(), {{"a", DType::F32, {4}}, {"b", DType::F32, {4}}}, 16);
  write_all(w);
  return dir;
}

std::string checkpoint_error(const fs::path& dir) {
  try {
    Checkpoint c(dir.string());
  } catch (const FileError& e) {
    return e.what();
  }
  ADD_FAILURE() << "loaded without error";
  return "";
}

}  // namespace

TEST(Checkpoint, IndexNamesMissingFile) {
  fs::path dir = two_shards();
  fs::remove(dir / "model-00002-of-00002.safetensors");
  std::string e = checkpoint_error(dir);
  EXPECT_HAS(e, "model-00002-of-00002.safetensors");
  EXPECT_HAS(e, "cannot open");
  fs::remove_all(dir);
}

TEST(Checkpoint, TensorListedInWrongShard) {
  fs::path dir = two_shards();
  write_file(dir / "model.safetensors.index.json",
             R"({"metadata": {"total_size": 32}, "weight_map": {"a": "model-00002-of-00002.safetensors",
                 "b": "model-00002-of-00002.safetensors"}})");
  std::string e = checkpoint_error(dir);
  EXPECT_HAS(e, "model.safetensors.index.json");
  EXPECT_HAS(e, "tensor 'a' is listed in model-00002-of-00002.safetensors but not found there");
  fs::remove_all(dir);
}

TEST(Checkpoint, DuplicateTensorAcrossShards) {
  fs::path dir = two_shards();
  {
    SafetensorsWriter w((dir / "model-00002-of-00002.safetensors").string(),
                        {{"a", DType::F32, {1}}, {"b", DType::F32, {4}}});
    const uint8_t buf[16] = {};
    w.write("a", buf, 4);
    w.write("b", buf, 16);
    w.finish();
  }
  std::string e = checkpoint_error(dir);
  EXPECT_HAS(e, "model-00002-of-00002.safetensors");
  EXPECT_HAS(e, "tensor 'a' also appears in another shard");
  fs::remove_all(dir);
}

TEST(Checkpoint, BadIndexAndMissingWeights) {
  fs::path dir = two_shards();
  write_file(dir / "model.safetensors.index.json", "{\"weight_map\": ");
  EXPECT_HAS(checkpoint_error(dir), "model.safetensors.index.json: not valid JSON");
  write_file(dir / "model.safetensors.index.json", "{\"metadata\": {\"total_size\": 1e400}}");
  EXPECT_HAS(checkpoint_error(dir), "model.safetensors.index.json: not valid JSON");
  write_file(dir / "model.safetensors.index.json", "{\"metadata\": {}}");
  EXPECT_HAS(checkpoint_error(dir), "missing object 'weight_map'");
  write_file(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "../model-00001-of-00002.safetensors"}})");
  EXPECT_HAS(checkpoint_error(dir), "invalid file");
  write_file(dir / "model.safetensors.index.json", R"({"weight_map": {"a": 3}})");
  EXPECT_HAS(checkpoint_error(dir), "weight_map entry 'a' must be a file name");
  fs::remove(dir / "model.safetensors.index.json");
  EXPECT_HAS(checkpoint_error(dir), "no model.safetensors or model.safetensors.index.json");
  EXPECT_HAS(checkpoint_error(dir / "nope"), "not a directory");
  fs::remove_all(dir);
}

// --- malformed single files -------------------------------------------------------------

TEST(SafetensorsMalformed, TruncatedBeforeHeaderLength) {
  EXPECT_HAS(parse_error(""), "truncated: 0 bytes");
  EXPECT_HAS(parse_error(std::string("\x08\x00\x00", 3)), "truncated: 3 bytes");
}

TEST(SafetensorsMalformed, DataCutShort) {
  std::string good = image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(16, '\1'));
  SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(good.data()), good.size(), "ok");
  std::string e = parse_error(good.substr(0, good.size() - 3));
  EXPECT_HAS(e,
             "bad.safetensors: tensor 'a': data_offsets end 16 is past the data section (13 bytes; file truncated?)");
}

TEST(SafetensorsMalformed, TruncatedFileOnDiskNamesThePath) {
  const fs::path dir = temp_dir();
  write_file(dir / "cut.safetensors", image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "abc"));
  try {
    SafetensorsFile f((dir / "cut.safetensors").string());
    ADD_FAILURE();
  } catch (const FileError& e) {
    EXPECT_EQ(e.path(), (dir / "cut.safetensors").string());
    EXPECT_HAS(e.what(), "past the data section");
  }
  EXPECT_THROW(SafetensorsFile((dir / "absent.safetensors").string()), FileError);
  EXPECT_THROW(SafetensorsFile(dir.string()), FileError);  // a folder
  fs::remove_all(dir);
}

TEST(SafetensorsMalformed, BadHeaderJson) {
  EXPECT_HAS(parse_error(image("{\"a\": ")), "bad.safetensors: not valid JSON");
  EXPECT_HAS(parse_error(image("{\"a\":1,}")), "bad.safetensors: not valid JSON");
  EXPECT_HAS(parse_error(image(R"({"__metadata__":{"x":"y"},"a":1e999})")), "bad.safetensors: not valid JSON");
}

TEST(SafetensorsMalformed, HeaderLengthPastEnd) {
  std::string b = image("{}");
  b[0] = 100;
  EXPECT_HAS(parse_error(b), "header length 100 runs past the end of the file (10 bytes)");
  std::string huge(8, '\xff');
  EXPECT_HAS(parse_error(huge + "{}"), "runs past the end");
}

TEST(SafetensorsMalformed, OverlappingOffsets) {
  std::string e = parse_error(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                    std::string(12, '\0')));
  EXPECT_HAS(e, "tensors 'a' and 'b' have overlapping data_offsets");
}

TEST(SafetensorsMalformed, OutOfRangeOffsets) {
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}})", std::string(8, '\0'))),
             "data_offsets end 12 is past the data section (8 bytes");
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})")),
             "data_offsets[0] must not be negative");
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]}})")),
             "data_offsets[1] is too large");
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1.5]}})", "x")),
             "data_offsets[1] must be an integer");
}

TEST(SafetensorsMalformed, BeginAfterEnd) {
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}})", std::string(4, '\0'))),
             "tensor 'a': data_offsets begin 4 > end 2");
}

TEST(SafetensorsMalformed, ByteCountNotMatchingShape) {
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,10]}})", std::string(10, '\0'))),
             "tensor 'a': 10 bytes of data for shape [2, 3] of BF16 (expected 12)");
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})")),
             "is too large");
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,0]}})")),
             "shape entry must not be negative");
}

TEST(SafetensorsMalformed, UnknownDtype) {
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", "x")),
             "tensor 'a': unknown dtype 'Q4'");
}

TEST(SafetensorsMalformed, NonUtf8TensorName) {
  EXPECT_HAS(parse_error(image("{\"a\xc3\x28\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "x")),
             "header is not valid UTF-8");
}

TEST(SafetensorsMalformed, HeaderNotAnObject) {
  EXPECT_HAS(parse_error(image("[1, 2]")), "header must be a JSON object");
  EXPECT_HAS(parse_error(image("\"x\"")), "header must be a JSON object");
  EXPECT_HAS(parse_error(image(R"({"a":[1]})")), "tensor 'a': entry must be an object");
  EXPECT_HAS(parse_error(image(R"({"__metadata__":[]})")), "__metadata__ must be an object");
  EXPECT_HAS(parse_error(image(R"({"__metadata__":{"k":1}})")), "__metadata__ value 'k' must be a string");
}

TEST(SafetensorsMalformed, MissingFields) {
  EXPECT_HAS(parse_error(image(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", "x")),
             "tensor 'a': missing string 'dtype'");
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", "x")),
             "tensor 'a': missing array 'shape'");
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"U8","shape":[1]}})", "x")),
             "tensor 'a': 'data_offsets' must be an array of two integers");
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "x")),
             "'data_offsets' must be an array of two integers");
  EXPECT_HAS(parse_error(image(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,1]}})", "x")),
             "missing string 'dtype'");
}

TEST(SafetensorsMalformed, AcceptsPaddingAndEmptyHeader) {
  std::string b = image("{}      ");
  EXPECT_TRUE(SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "e").empty());
  std::map<std::string, std::string> meta;
  std::string m = image(R"({"__metadata__":{"format":"pt"}})");
  SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(m.data()), m.size(), "m", &meta);
  EXPECT_EQ(meta.at("format"), "pt");
}

// A released tensor (its pages out of the process, and out of the page cache with drop_cache) still
// reads back its bytes: they fault in again from the file.
TEST(Checkpoint, ReleasedTensorsReadBackTheirBytes) {
  const fs::path dir = temp_dir();
  const std::vector<TensorSpec> specs = {{"big", DType::U8, {3 << 20}}, {"other", DType::U8, {1 << 20}}};
  CheckpointWriter w(dir.string(), specs, uint64_t(1) << 30);
  write_all(w);
  Checkpoint c(dir.string());
  for (bool drop : {false, true}) {
    for (const char* name : {"big", "other"}) {
      const llada2::TensorView& t = c.get(name);
      const auto want = pattern(t.nbytes, name[0] == 'b' ? 0 : 1);
      c.release(t, drop);
      EXPECT_TRUE(c.released(name));
      EXPECT_EQ(std::memcmp(t.data, want.data(), want.size()), 0) << name << " drop_cache " << drop;
    }
  }
}
