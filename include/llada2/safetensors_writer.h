// Streaming safetensors writers: a single file, and a Hugging Face checkpoint folder that is
// split into shards (model-0000N-of-0000M.safetensors + model.safetensors.index.json) when
// large. The header is written first from the declared tensors, then each tensor's bytes
// are streamed in header order, so a model never has to sit in memory.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llada2/types.h"

namespace llada2 {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  // shape × dtype size; throws InputError on negative or overflowing shapes.
  uint64_t nbytes() const;
};

// The header block of a safetensors file for `tensors` (which must be sorted by name and
// unique): the 8-byte little-endian length followed by the JSON header, padded with spaces
// to a multiple of 8 bytes. Tensor data follows in the same order with consecutive offsets.
std::string safetensors_header(const std::vector<TensorSpec>& tensors,
                               const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Writes one safetensors file. The constructor sorts the tensors by name and writes the
// header; write() then appends bytes to the current tensor (one call per tensor or many
// smaller ones), in tensors() order; finish() checks that every byte arrived and closes the
// file. Any misuse (wrong tensor, too many bytes, missing bytes) throws InputError; I/O
// failures throw FileError. A writer destroyed before finish() deletes its partial file.
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::string& path, std::vector<TensorSpec> tensors,
                    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The write order (sorted by name).
  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  void write(const std::string& name, const void* data, size_t nbytes);
  void finish();
  // Total file size once finished.
  uint64_t file_size() const { return header_bytes_ + data_bytes_; }
  const std::string& path() const { return path_; }

 private:
  void put(const void* data, size_t n);

  std::string path_;
  std::vector<TensorSpec> tensors_;
  int fd_ = -1;
  uint64_t header_bytes_ = 0;
  uint64_t data_bytes_ = 0;
  size_t current_ = 0;         // index of the tensor being written
  uint64_t current_done_ = 0;  // bytes of it written so far
  bool finished_ = false;
};

// Hugging Face's shard files are 5 GB by default; 4 GB keeps each shard well under
// what 32-bit-offset tools and FAT-style file systems handle.
constexpr uint64_t kDefaultMaxShardBytes = 4'000'000'000ull;

// Writes the tensors of a checkpoint folder: one model.safetensors when the tensor bytes total
// at most `max_shard_bytes`, otherwise shards of at most that size each (a single tensor
// larger than the limit gets a shard of its own) and model.safetensors.index.json
// ({"metadata": {"total_size": N}, "weight_map": {name: file}}). Tensors are streamed in
// name order across the shards, exactly as with SafetensorsWriter.
class CheckpointWriter {
 public:
  CheckpointWriter(const std::string& dir, std::vector<TensorSpec> tensors,
                   uint64_t max_shard_bytes = kDefaultMaxShardBytes);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // The write order (sorted by name).
  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  // The file names, in order (one entry, "model.safetensors", when not sharded).
  const std::vector<std::string>& files() const { return files_; }
  // The file each tensor goes to, by name.
  const std::map<std::string, std::string>& weight_map() const { return weight_map_; }
  uint64_t total_tensor_bytes() const { return total_; }

  void write(const std::string& name, const void* data, size_t nbytes);
  // Finishes the last shard and writes the index (when sharded).
  void finish();

 private:
  void open_shard(size_t shard);

  std::string dir_;
  std::vector<TensorSpec> tensors_;
  std::vector<std::string> files_;
  std::vector<std::vector<TensorSpec>> shard_tensors_;
  std::map<std::string, std::string> weight_map_;
  uint64_t total_ = 0;
  size_t shard_ = 0;
  std::unique_ptr<SafetensorsWriter> writer_;
  bool finished_ = false;
};

}  // namespace llada2
