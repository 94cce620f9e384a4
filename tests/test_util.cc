#include "test_util.h"

#include "llada2/test_model.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdexcept>
#include <vector>

namespace llada2::testing {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(in);
}

SchedulerConfig golden_scheduler(const nlohmann::json& case_json) {
  SchedulerConfig sc;
  const auto& s = case_json["scheduler_config"];
  sc.block_length = s["block_length"];
  sc.num_inference_steps = s["num_inference_steps"];
  sc.threshold = s["threshold"];
  if (!s["editing_threshold"].is_null()) sc.editing_threshold = s["editing_threshold"].get<double>();
  sc.minimal_topk = s["minimal_topk"];
  return sc;
}

std::shared_ptr<const Model> golden_model(const std::string& model_dir_rel) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const Model>> cache;
  std::lock_guard<std::mutex> lk(mu);
  auto& m = cache[model_dir_rel];
  if (!m) m = Model::load(golden_path(model_dir_rel));
  return m;
}

std::vector<float> tensor_f32(const TensorView& t) {
  std::vector<float> out(size_t(t.numel()));
  kernels::to_f32(t.dtype, t.data, 0, t.numel(), out.data());
  return out;
}

std::vector<int64_t> tensor_i64(const TensorView& t) {
  std::vector<int64_t> out(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype == DType::I64) {
      int64_t v;
      std::memcpy(&v, t.data + i * 8, 8);
      out[size_t(i)] = v;
    } else {
      out[size_t(i)] = t.data[i] ? 1 : 0;
    }
  }
  return out;
}

const std::string& chat_model_dir() {
  // Never destroyed: the exit handler below still needs the path after static destructors ran.
  static const std::string* dir = [] {
    auto* d = new std::string(
        (std::filesystem::temp_directory_path() / ("llada2_chat_model_" + std::to_string(::getpid()))).string());
    TestModelOptions o;
    o.shape = "tiny-b";
    o.dtype = DType::F32;
    o.seed = 7;
    o.tokenizer_dir = data_path("tok/ling-synth");
    write_test_model(*d, o);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(chat_model_dir(), ec);
    });
    return d;
  }();
  return *dir;
}

namespace {

// Removes the directories fresh_temp_dir() made for a test when the test passes; a failed test keeps
// them, and says where, for a look at what it wrote.
class TempDirCleaner : public ::testing::EmptyTestEventListener {
 public:
  void add(const std::filesystem::path& p) { dirs_.push_back(p); }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    for (const auto& d : dirs_) {
      if (info.result()->Passed()) {
        std::error_code ec;
        std::filesystem::remove_all(d, ec);
      } else {
        std::fprintf(stderr, "test files kept in %s\n", d.string().c_str());
      }
    }
    dirs_.clear();
  }

 private:
  std::vector<std::filesystem::path> dirs_;
};

}  // namespace

std::filesystem::path fresh_temp_dir() {
  namespace fs = std::filesystem;
  auto* unit = ::testing::UnitTest::GetInstance();
  static TempDirCleaner* cleaner = [unit] {
    auto* c = new TempDirCleaner;  // owned by gtest's listener list from here on
    unit->listeners().Append(c);
    return c;
  }();
  const auto* info = unit->current_test_info();
  fs::path p = fs::temp_directory_path() / ("llada2_" + std::string(info->test_suite_name()) + "_" + info->name() +
                                            "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  cleaner->add(p);
  return p;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string nested_json(size_t depth, bool objects) {
  std::string s;
  s.reserve(depth * 6);
  for (size_t i = 1; i < depth; ++i) s += objects ? "{\"a\":" : "[";
  s += objects ? "{}" : "[]";
  s.append(depth - 1, objects ? '}' : ']');
  return s;
}

int run_cli(const std::string& args, std::string* out, std::string* err) {
  char errfile[] = "/tmp/llada2_cli_errXXXXXX";
  int fd = mkstemp(errfile);
  if (fd >= 0) close(fd);
  std::string cmd = std::string(LLADA2_CLI_PATH) + " " + args + " 2>" + errfile;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  std::string o;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) o.append(buf.data(), n);
  int status = pclose(p);
  if (out) *out = o;
  if (err) {
    std::ifstream in(errfile);
    err->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  unlink(errfile);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace llada2::testing
