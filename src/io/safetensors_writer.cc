#include "llada2/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/utf8.h"
#include "llada2/error.h"

namespace llada2 {

namespace fs = std::filesystem;
using nlohmann::json;

uint64_t TensorSpec::nbytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0) throw InputError("tensor '" + name + "' has a negative dimension");
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / 16 / uint64_t(d))
      throw InputError("tensor '" + name + "' is too large");
    n *= uint64_t(d);
  }
  return n;
}

namespace {

std::string quoted(const std::string& s) { return json(s).dump(); }

void check_specs(const std::vector<TensorSpec>& tensors) {
  std::set<std::string> seen;
  for (const TensorSpec& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !utf8_valid(t.name))
      throw InputError("invalid tensor name '" + t.name + "' (must be non-empty UTF-8 and not __metadata__)");
    if (!seen.insert(t.name).second) throw InputError("tensor '" + t.name + "' is declared twice");
    t.nbytes();
  }
}

std::vector<TensorSpec> sorted(std::vector<TensorSpec> tensors) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorSpec& a, const TensorSpec& b) { return a.name < b.name; });
  check_specs(tensors);
  return tensors;
}

}  // namespace

std::string safetensors_header(const std::vector<TensorSpec>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  for (size_t i = 1; i < tensors.size(); ++i) {
    if (!(tensors[i - 1].name < tensors[i].name))
      throw InputError("safetensors_header: tensors must be sorted by name and unique");
  }
  check_specs(tensors);
  // Written by hand rather than through json::dump so that the keys keep the order of
  // the reference writer (dtype, shape, data_offsets) and the tensors stay in name order.
  std::string h = "{";
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      h.append(first ? "" : ",").append(quoted(k)).append(":").append(quoted(v));
      first = false;
    }
    h += "}";
  }
  uint64_t offset = 0;
  for (const TensorSpec& t : tensors) {
    if (h.size() > 1) h += ",";
    h += quoted(t.name) + ":{\"dtype\":\"" + dtype_name(t.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) h.append(i ? "," : "").append(std::to_string(t.shape[i]));
    uint64_t end = offset + t.nbytes();
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  h += "}";
  // Padding the JSON to a multiple of 8 keeps the data section 8-byte aligned.
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + h;
}

SafetensorsWriter::SafetensorsWriter(const std::string& path, std::vector<TensorSpec> tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path), tensors_(sorted(std::move(tensors))) {
  std::string header = safetensors_header(tensors_, metadata);
  for (const TensorSpec& t : tensors_) data_bytes_ += t.nbytes();
  header_bytes_ = header.size();
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw FileError(path, std::string("cannot create: ") + std::strerror(errno));
  put(header.data(), header.size());
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(path_.c_str());
}

void SafetensorsWriter::put(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, std::min<size_t>(n, 1u << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw FileError(path_, std::string("write failed: ") + std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
  }
}

void SafetensorsWriter::write(const std::string& name, const void* data, size_t nbytes) {
  if (finished_) throw InputError(path_ + ": write of tensor '" + name + "' after finish()");
  // Tensors already complete (including empty ones) are passed over when the next one starts.
  while (current_ < tensors_.size() && tensors_[current_].name != name) {
    const TensorSpec& t = tensors_[current_];
    if (current_done_ != t.nbytes())
      throw InputError(path_ + ": tensor '" + name + "' written while '" + t.name + "' has " +
                       std::to_string(current_done_) + " of its " + std::to_string(t.nbytes()) +
                       " bytes (tensors are written whole, in name order)");
    ++current_;
    current_done_ = 0;
  }
  if (current_ == tensors_.size())
    throw InputError(path_ + ": tensor '" + name + "' is not declared, or was written out of name order");
  const TensorSpec& t = tensors_[current_];
  if (nbytes > t.nbytes() - current_done_)
    throw InputError(path_ + ": tensor '" + name + "' gets " + std::to_string(current_done_ + nbytes) +
                     " bytes, more than its " + std::to_string(t.nbytes()) + " (shape × dtype)");
  put(data, nbytes);
  current_done_ += nbytes;
}

void SafetensorsWriter::finish() {
  if (finished_) return;
  for (size_t i = current_; i < tensors_.size(); ++i) {
    uint64_t done = i == current_ ? current_done_ : 0;
    if (done != tensors_[i].nbytes())
      throw InputError(path_ + ": tensor '" + tensors_[i].name + "' got " + std::to_string(done) + " of its " +
                       std::to_string(tensors_[i].nbytes()) + " bytes");
  }
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw FileError(path_, std::string("close failed: ") + std::strerror(errno));
  finished_ = true;
}

CheckpointWriter::CheckpointWriter(const std::string& dir, std::vector<TensorSpec> tensors, uint64_t max_shard_bytes)
    : dir_(dir), tensors_(sorted(std::move(tensors))) {
  if (max_shard_bytes == 0) throw InputError("the shard size limit must be positive");
  std::vector<uint64_t> shard_bytes;
  for (const TensorSpec& t : tensors_) {
    uint64_t b = t.nbytes();
    total_ += b;
    if (shard_tensors_.empty() || (shard_bytes.back() > 0 && shard_bytes.back() + b > max_shard_bytes)) {
      shard_tensors_.emplace_back();
      shard_bytes.push_back(0);
    }
    shard_tensors_.back().push_back(t);
    shard_bytes.back() += b;
  }
  if (shard_tensors_.empty()) shard_tensors_.emplace_back();
  const size_t m = shard_tensors_.size();
  for (size_t s = 0; s < m; ++s) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", s + 1, m);
    files_.push_back(m == 1 ? "model.safetensors" : buf);
    for (const TensorSpec& t : shard_tensors_[s]) weight_map_[t.name] = files_.back();
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec) && !fs::create_directories(dir, ec))
    throw FileError(dir, "cannot create the checkpoint folder: " + ec.message());
  open_shard(0);
}

CheckpointWriter::~CheckpointWriter() = default;

void CheckpointWriter::open_shard(size_t shard) {
  writer_.reset();
  shard_ = shard;
  writer_ = std::make_unique<SafetensorsWriter>((fs::path(dir_) / files_[shard]).string(), shard_tensors_[shard]);
}

void CheckpointWriter::write(const std::string& name, const void* data, size_t nbytes) {
  if (finished_) throw InputError(dir_ + ": write of tensor '" + name + "' after finish()");
  auto it = weight_map_.find(name);
  if (it == weight_map_.end()) throw InputError(dir_ + ": tensor '" + name + "' is not declared");
  size_t target = size_t(std::find(files_.begin(), files_.end(), it->second) - files_.begin());
  if (target < shard_) throw InputError(dir_ + ": tensor '" + name + "' written out of name order");
  while (shard_ < target) {
    writer_->finish();
    open_shard(shard_ + 1);
  }
  writer_->write(name, data, nbytes);
}

void CheckpointWriter::finish() {
  if (finished_) return;
  while (true) {
    writer_->finish();
    if (shard_ + 1 == files_.size()) break;
    open_shard(shard_ + 1);
  }
  if (files_.size() > 1) {
    json index;
    index["metadata"] = {{"total_size", total_}};
    index["weight_map"] = weight_map_;
    std::string text = index.dump(2) + "\n";
    std::string path = (fs::path(dir_) / "model.safetensors.index.json").string();
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw FileError(path, std::string("cannot create: ") + std::strerror(errno));
    bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) throw FileError(path, "write failed");
  }
  finished_ = true;
}

}  // namespace llada2
