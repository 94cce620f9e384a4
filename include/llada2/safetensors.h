// Memory-mapped safetensors files and Hugging Face checkpoint folders
// (single model.safetensors or sharded with model.safetensors.index.json).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "llada2/types.h"

namespace llada2 {

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapped file
  size_t nbytes = 0;
  std::string file;  // the file it lives in, for error messages

  int64_t numel() const;
  std::string shape_str() const;
};

// A read-only memory mapping of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws FileError naming the file and the problem.
  explicit SafetensorsFile(const std::string& path);

  // Validates an in-memory image (used by the fuzzer and tests); `label` names it in errors.
  static std::map<std::string, TensorView> parse(const uint8_t* bytes, size_t size, const std::string& label,
                                                 std::map<std::string, std::string>* metadata = nullptr);

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return file_->path(); }

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Drops the pages wholly inside [p, p + n) of a read-only file mapping from this process (the page
// cache keeps them if there is room, unless `drop_cache`, which also frees them from the page cache
// where no other process maps them; touching them again reads them back).
void release_pages(const uint8_t* p, size_t n, bool drop_cache = false);
// Asks the kernel to start reading the pages of [p, p + n) from disk now (MADV_WILLNEED).
void prefetch_pages(const uint8_t* p, size_t n);

// All tensors of a checkpoint folder, by name.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& dir);

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws FileError if absent.
  const TensorView& get(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::string& dir() const { return dir_; }
  // Total bytes of tensor data across all files.
  size_t total_bytes() const;
  // Reads every tensor's pages into memory now (file order), so that the first forward does not wait
  // on the disk; `progress(done, total)` (optional) is called every 64 MiB and at the end.
  // Tensors that were released (release()) are skipped and not counted.
  void prefault(const std::function<void(uint64_t done, uint64_t total)>& progress = nullptr) const;
  // Bytes of the tensors prefault() would read that are in the page cache already (mincore), i.e.
  // that reading them costs no disk access.
  uint64_t resident_bytes() const;
  // The tensor's data is no longer needed from the file (the model keeps its own copy, e.g. repacked):
  // its pages leave this process (and the page cache too with `drop_cache`) and prefault() skips it.
  // The view stays valid (reads fault it back in).
  void release(const TensorView& t, bool drop_cache = false) const;
  bool released(const std::string& name) const { return released_.count(name) != 0; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, TensorView> tensors_;
  mutable std::set<std::string> released_;
};

}  // namespace llada2
