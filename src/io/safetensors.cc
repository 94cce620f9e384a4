#include "llada2/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/utf8.h"
#include "llada2/error.h"
#include "llada2/json.h"

namespace llada2 {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FileError(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FileError(path, "not a regular file");
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw FileError(path, std::string("cannot map: ") + std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

namespace {

constexpr uint64_t kMaxHeaderBytes = 256ull << 20;

int64_t checked_int(const json& v, const std::string& label, const std::string& what) {
  if (!v.is_number_integer()) throw FileError(label, what + " must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    throw FileError(label, what + " is too large");
  int64_t x = v.get<int64_t>();
  if (x < 0) throw FileError(label, what + " must not be negative");
  return x;
}

}  // namespace

std::map<std::string, TensorView> SafetensorsFile::parse(const uint8_t* bytes, size_t size, const std::string& label,
                                                         std::map<std::string, std::string>* metadata) {
  if (size < 8)
    throw FileError(
        label, "truncated: " + std::to_string(size) + " bytes, a safetensors file starts with an 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > size - 8)
    throw FileError(label, "header length " + std::to_string(n) + " runs past the end of the file (" +
                               std::to_string(size) + " bytes)");
  if (n > kMaxHeaderBytes) throw FileError(label, "header length " + std::to_string(n) + " is implausibly large");
  const char* hdr = reinterpret_cast<const char*>(bytes + 8);
  if (!utf8_valid(std::string_view(hdr, n))) throw FileError(label, "header is not valid UTF-8");
  const json j = parse_json(std::string_view(hdr, n), label);
  if (!j.is_object()) throw FileError(label, "header must be a JSON object");

  const size_t data_start = 8 + size_t(n);
  const uint64_t data_size = size - data_start;
  std::map<std::string, TensorView> out;
  std::vector<std::pair<uint64_t, std::pair<uint64_t, std::string>>> ranges;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) throw FileError(label, "__metadata__ must be an object of strings");
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string()) throw FileError(label, "__metadata__ value '" + m.key() + "' must be a string");
        if (metadata) (*metadata)[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!e.is_object()) throw FileError(label, where + ": entry must be an object");
    if (!e.contains("dtype") || !e["dtype"].is_string()) throw FileError(label, where + ": missing string 'dtype'");
    if (!e.contains("shape") || !e["shape"].is_array()) throw FileError(label, where + ": missing array 'shape'");
    if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
      throw FileError(label, where + ": 'data_offsets' must be an array of two integers");
    TensorView t;
    t.name = name;
    t.file = label;
    std::string ds = e["dtype"].get<std::string>();
    if (!parse_dtype(ds, &t.dtype)) throw FileError(label, where + ": unknown dtype '" + ds + "'");
    uint64_t numel = 1;
    for (const json& d : e["shape"]) {
      int64_t v = checked_int(d, label, where + " shape entry");
      t.shape.push_back(v);
      if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / uint64_t(v))
        throw FileError(label, where + ": shape " + t.shape_str() + " is too large");
      numel *= uint64_t(v);
    }
    uint64_t b = uint64_t(checked_int(e["data_offsets"][0], label, where + " data_offsets[0]"));
    uint64_t en = uint64_t(checked_int(e["data_offsets"][1], label, where + " data_offsets[1]"));
    if (b > en)
      throw FileError(label, where + ": data_offsets begin " + std::to_string(b) + " > end " + std::to_string(en));
    if (en > data_size)
      throw FileError(label, where + ": data_offsets end " + std::to_string(en) + " is past the data section (" +
                                 std::to_string(data_size) + " bytes; file truncated?)");
    uint64_t expect = numel * dtype_size(t.dtype);
    if (en - b != expect)
      throw FileError(label, where + ": " + std::to_string(en - b) + " bytes of data for shape " + t.shape_str() +
                                 " of " + ds + " (expected " + std::to_string(expect) + ")");
    t.data = bytes + data_start + b;
    t.nbytes = size_t(en - b);
    if (en > b) ranges.push_back({b, {en, name}});
    out.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second.first)
      throw FileError(label, "tensors '" + ranges[i - 1].second.second + "' and '" + ranges[i].second.second +
                                 "' have overlapping data_offsets");
  }
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
  tensors_ = parse(file_->data(), file_->size(), path, &metadata_);
}

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw FileError(dir, "not a directory (expected a checkpoint folder with config.json and *.safetensors)");
  std::vector<std::string> shard_files;
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::map<std::string, std::string> weight_map;
  if (fs::exists(index)) {
    const nlohmann::ordered_json j = read_json_file(index.string());
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw FileError(index.string(), "missing object 'weight_map'");
    std::set<std::string> seen;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        throw FileError(index.string(), "weight_map entry '" + it.key() + "' must be a file name");
      std::string f = it.value().get<std::string>();
      if (f.find('/') != std::string::npos || f == ".." || f.empty())
        throw FileError(index.string(), "weight_map entry '" + it.key() + "' names an invalid file '" + f + "'");
      weight_map[it.key()] = f;
      if (seen.insert(f).second) shard_files.push_back(f);
    }
  } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
    shard_files.push_back("model.safetensors");
  } else {
    throw FileError(dir, "no model.safetensors or model.safetensors.index.json found");
  }
  for (const std::string& f : shard_files) {
    auto file = std::make_unique<SafetensorsFile>((fs::path(dir) / f).string());
    for (const auto& [name, t] : file->tensors()) {
      if (!tensors_.emplace(name, t).second)
        throw FileError(file->path(), "tensor '" + name + "' also appears in another shard");
    }
    files_.push_back(std::move(file));
  }
  for (const auto& [name, f] : weight_map) {
    auto it = tensors_.find(name);
    if (it == tensors_.end() || fs::path(it->second.file).filename() != f)
      throw FileError(index.string(), "tensor '" + name + "' is listed in " + f + " but not found there");
  }
}

const TensorView& Checkpoint::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw FileError(dir_, "missing tensor '" + name + "'");
  return it->second;
}

size_t Checkpoint::total_bytes() const {
  size_t s = 0;
  for (const auto& [name, t] : tensors_) s += t.nbytes;
  return s;
}

}  // namespace llada2

namespace llada2 {

namespace {
uintptr_t page_size() {
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096);
  return page;
}
}  // namespace

void release_pages(const uint8_t* p, size_t n, bool drop_cache) {
  const uintptr_t page = page_size();
  const uintptr_t a = (uintptr_t(p) + page - 1) / page * page, b = (uintptr_t(p) + n) / page * page;
  if (b <= a) return;
#ifdef MADV_PAGEOUT
  if (drop_cache) madvise(reinterpret_cast<void*>(a), b - a, MADV_PAGEOUT);  // Linux 5.4+; else a no-op
#else
  (void)drop_cache;
#endif
  madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
}

void prefetch_pages(const uint8_t* p, size_t n) {
  const uintptr_t page = page_size();
  const uintptr_t a = uintptr_t(p) / page * page, b = uintptr_t(p) + n;
  if (n > 0) madvise(reinterpret_cast<void*>(a), b - a, MADV_WILLNEED);
}

void Checkpoint::release(const TensorView& t, bool drop_cache) const {
  release_pages(t.data, t.nbytes, drop_cache);
  released_.insert(t.name);
}

uint64_t Checkpoint::resident_bytes() const {
  const uintptr_t page = page_size();
  uint64_t resident = 0;
  std::vector<unsigned char> vec;
  for (const auto& [name, t] : tensors_) {
    if (released_.count(name) || t.nbytes == 0) continue;
    const uintptr_t a = reinterpret_cast<uintptr_t>(t.data) & ~(page - 1),
                    b = reinterpret_cast<uintptr_t>(t.data) + t.nbytes;
    const size_t pages = (b - a + page - 1) / page;
    vec.assign(pages, 0);
    if (mincore(reinterpret_cast<void*>(a), b - a, vec.data()) != 0) continue;
    size_t in = 0;
    for (unsigned char v : vec) in += v & 1;
    resident += uint64_t(double(t.nbytes) * double(in) / double(pages));
  }
  return resident;
}

void Checkpoint::prefault(const std::function<void(uint64_t done, uint64_t total)>& progress) const {
  std::vector<const TensorView*> views;
  uint64_t total = 0;
  for (const auto& [name, t] : tensors_)
    if (!released_.count(name)) views.push_back(&t), total += t.nbytes;
  std::sort(views.begin(), views.end(), [](const TensorView* a, const TensorView* b) {
    return a->file != b->file ? a->file < b->file : a->data < b->data;
  });
  const uintptr_t page = page_size();
  constexpr uint64_t kChunk = uint64_t(64) << 20;
  uint64_t done = 0, reported = 0;
  volatile uint8_t sink = 0;
  for (const TensorView* t : views) {
    for (size_t off = 0; off < t->nbytes; off += kChunk) {
      const size_t n = std::min<size_t>(kChunk, t->nbytes - off);
      const uintptr_t a = reinterpret_cast<uintptr_t>(t->data + off) & ~(page - 1);
      madvise(reinterpret_cast<void*>(a), reinterpret_cast<uintptr_t>(t->data + off + n) - a, MADV_WILLNEED);
      for (size_t i = 0; i < n; i += page) sink = sink + t->data[off + i];
      sink = sink + t->data[off + n - 1];
      done += n;
      if (progress && done - reported >= kChunk) {
        progress(done, total);
        reported = done;
      }
    }
  }
  if (progress) progress(total, total);
}

}  // namespace llada2
