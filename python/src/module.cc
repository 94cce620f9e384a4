// llada2._core: the engine's pipeline, model and tokenizer for Python. The diffusers-compatible surface
// (keyword arguments, types, outputs, callbacks) is python/llada2/__init__.py; this module runs calls
// with the GIL released and turns C++ errors into Python exceptions.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "llada2/call_json.h"
#include "llada2/chat_template.h"
#include "llada2/error.h"
#include "llada2/model.h"
#include "llada2/pipeline.h"
#include "llada2/runtime.h"
#include "llada2/tokenizer.h"
#include "llada2/version.h"
#include "pipeline/prompt.h"

namespace py = pybind11;

namespace {

using llada2::InputError;

// The arithmetic mode (SPEC A6) is process-wide (llada2::runtime::set_exact) and may only change between
// forwards. Calls hold the gate in their mode: a call that needs the other mode waits until the calls
// running in the current one have ended, so two threads never switch it under each other.
class ModeGate {
 public:
  static ModeGate& get() {
    static ModeGate gate;
    return gate;
  }
  class Hold {
   public:
    Hold(ModeGate& g, bool exact) : g_(g) { g_.enter(exact); }
    ~Hold() { g_.leave(); }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    ModeGate& g_;
  };

 private:
  void enter(bool exact) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return active_ == 0 || llada2::runtime::exact() == exact; });
    if (llada2::runtime::exact() != exact) llada2::runtime::set_exact(exact);
    ++active_;
  }
  void leave() {
    std::lock_guard<std::mutex> lk(mu_);
    if (--active_ == 0) cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;
};

// An id tensor from Python: any array (its values read as int64) and the dtype name the caller saw
// (e.g. "torch.int32"), which the pipeline's checks report as the original does.
llada2::IdTensor id_tensor(const py::array& a, const std::string& dtype) {
  llada2::IdTensor t;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) t.shape.push_back(int64_t(a.shape(i)));
  t.dtype = dtype;
  if (a.dtype().kind() == 'i' || a.dtype().kind() == 'u' || a.dtype().kind() == 'b') {
    auto v = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    if (!v) throw py::error_already_set();
    t.values.assign(v.data(), v.data() + v.size());
  } else {
    t.values.assign(size_t(a.size()), 0);  // a float or other array: rejected by its dtype anyway
  }
  return t;
}

llada2::Matrix<int64_t> int_matrix(const py::handle& obj, const char* what) {
  auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!a) throw py::type_error(std::string(what) + " must be an array of token ids");
  if (a.ndim() != 2)
    throw py::value_error(std::string(what) + " must be 2-D [batch, window], got " + std::to_string(a.ndim()) +
                          " dimensions");
  llada2::Matrix<int64_t> m(int64_t(a.shape(0)), int64_t(a.shape(1)));
  std::copy(a.data(), a.data() + a.size(), m.data.begin());
  return m;
}

py::array numpy(const llada2::CallbackTensor& t) {
  std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
  if (t.is_float) {
    py::array_t<float> a(shape);
    std::copy(t.floats.begin(), t.floats.end(), a.mutable_data());
    return a;
  }
  if (t.is_bool) {
    py::array_t<bool> a(shape);
    bool* d = a.mutable_data();
    for (size_t i = 0; i < t.ints.size(); ++i) d[i] = t.ints[i] != 0;
    return a;
  }
  py::array_t<int64_t> a(shape);
  std::copy(t.ints.begin(), t.ints.end(), a.mutable_data());
  return a;
}

py::array_t<int64_t> numpy(const llada2::Matrix<int64_t>& m) {
  py::array_t<int64_t> a({py::ssize_t(m.rows), py::ssize_t(m.cols)});
  std::copy(m.data.begin(), m.data.end(), a.mutable_data());
  return a;
}

nlohmann::ordered_json parse_json(const std::string& s, const char* what) {
  try {
    return nlohmann::ordered_json::parse(s);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(std::string(what) + ": " + e.what());
  }
}

struct PyTokenizer {
  std::shared_ptr<const llada2::Tokenizer> tok;
  std::shared_ptr<const llada2::ChatTemplate> tpl;  // null without a chat template

  static PyTokenizer from_dir(const std::string& dir) {
    PyTokenizer t;
    t.tok = std::make_shared<const llada2::Tokenizer>(llada2::Tokenizer::from_dir(dir));
    if (!t.tok->chat_template().empty()) t.tpl = std::make_shared<const llada2::ChatTemplate>(t.tok->chat_template());
    return t;
  }
  std::string render(const std::string& messages, const std::string& tools, bool add_generation_prompt) const {
    nlohmann::ordered_json m = parse_json(messages, "messages"), tl = parse_json(tools, "tools");
    py::gil_scoped_release nogil;
    return llada2::render_chat(m, tl, add_generation_prompt, *tok, tpl.get());
  }
};

struct PyModel {
  std::shared_ptr<const llada2::Model> model;

  // Logits [B, W, V] (float32) of one forward over ids [B, W].
  py::array_t<float> forward(const py::handle& ids_obj, const py::handle& mask_obj, const std::string& attention,
                             int64_t block_length, bool exact) const {
    const llada2::Matrix<int64_t> ids = int_matrix(ids_obj, "input_ids");
    llada2::Matrix<int64_t> mask(ids.rows, ids.cols, 1);
    if (!mask_obj.is_none()) {
      mask = int_matrix(mask_obj, "attention_mask");
      if (mask.rows != ids.rows || mask.cols != ids.cols)
        throw py::value_error("`attention_mask` must have the shape of `input_ids`");
    }
    if (block_length <= 0) throw py::value_error("`block_length` must be > 0, got " + std::to_string(block_length));
    const int64_t V = model->config().vocab_size;  // the forward itself rejects ids outside it
    llada2::ForwardBatch fb;
    fb.batch = ids.rows;
    fb.window = ids.cols;
    fb.input_ids = ids.data.data();
    fb.key_mask = mask.data.data();
    fb.attention = llada2::parse_attention_mode(attention);
    fb.block_length = block_length;
    py::array_t<float> out({py::ssize_t(ids.rows), py::ssize_t(ids.cols), py::ssize_t(V)});
    float* dst = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      ModeGate::Hold hold(ModeGate::get(), exact);
      model->forward(fb, dst);
    }
    return out;
  }
};

struct PyPipeline {
  std::shared_ptr<const llada2::Pipeline> pipe;

  // Runs one call. `call` holds the JSON-typed keyword arguments (the `--call` object); ids and mask
  // come as arrays with the dtype names the caller saw. `callback(step, timestep, tensors)` returns a
  // replacement block_x or None; it is also where Ctrl-C is noticed, once per step.
  py::tuple run(const std::string& call_json, const py::object& input_ids, const std::string& ids_dtype,
                const py::object& attention_mask, const std::string& mask_dtype, const py::object& callback,
                bool exact) const {
    llada2::GenerateOptions o =
        llada2::parse_call_json(parse_json(call_json, "call"), pipe->scheduler_config()).options;
    if (!input_ids.is_none()) o.input_ids = id_tensor(py::array::ensure(input_ids), ids_dtype);
    if (!attention_mask.is_none()) o.attention_mask = id_tensor(py::array::ensure(attention_mask), mask_dtype);
    const bool user_callback = !callback.is_none();
    std::exception_ptr raised;  // a Python exception (KeyboardInterrupt, the callback's own) to rethrow
    o.callback_on_step_end = [&](int64_t step, int64_t timestep,
                                 const std::map<std::string, llada2::CallbackTensor>& tensors) {
      llada2::CallbackResult r;
      py::gil_scoped_acquire gil;
      try {
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        if (user_callback) {
          py::dict d;
          for (const auto& [name, t] : tensors) d[py::str(name)] = numpy(t);
          py::object bx = callback(step, timestep, d);
          if (!bx.is_none()) r.block_x = int_matrix(bx, "`block_x`");
        }
      } catch (...) {
        raised = std::current_exception();
        r.block_x.reset();
        r.stop = true;
      }
      return r;
    };
    llada2::PipelineOutput out;
    {
      py::gil_scoped_release nogil;
      llada2::ResolvedCall call = pipe->resolve(o);
      // Without the caller's callback the step hook only checks for Ctrl-C: it asks for no tensors (the
      // names were checked above), so the LM head still runs on the needed cells only.
      if (!user_callback) call.options.callback_on_step_end_tensor_inputs = std::vector<std::string>{};
      ModeGate::Hold hold(ModeGate::get(), exact);
      out = (*pipe)(call);
    }
    if (raised) std::rethrow_exception(raised);
    py::dict stats;
    stats["forwards"] = out.stats.forwards;
    stats["generated_tokens"] = out.stats.generated_tokens;
    stats["seconds"] = out.stats.seconds;
    stats["tokens_per_second"] = out.stats.tokens_per_second();
    stats["tokens_per_forward"] = out.stats.tokens_per_forward();
    py::object texts = out.texts ? py::object(py::cast(*out.texts)) : py::object(py::none());
    return py::make_tuple(numpy(out.sequences), texts, stats);
  }
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "llada2.cpp engine internals; use the `llada2` package (LLaDA2Pipeline, Model, Tokenizer).";

  // FileError (a malformed checkpoint file) -> OSError, other invalid input -> ValueError.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const llada2::FileError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    } catch (const InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def("version", &llada2::version_line, "llada2 version, revision and kernel tier");
  m.def("threads", &llada2::runtime::threads, "worker threads of the engine's thread pool");
  m.def("set_threads", &llada2::runtime::set_threads, py::arg("n"), "sets the worker threads (process-wide)");

  py::class_<PyTokenizer>(m, "Tokenizer")
      .def_static("from_dir", &PyTokenizer::from_dir, py::arg("path"), py::call_guard<py::gil_scoped_release>())
      .def(
          "encode",
          [](const PyTokenizer& t, const std::string& text, bool add_special_tokens) {
            return t.tok->encode(text, add_special_tokens);
          },
          py::arg("text"), py::arg("add_special_tokens") = true)
      .def(
          "decode",
          [](const PyTokenizer& t, const std::vector<int64_t>& ids, bool skip_special_tokens) {
            return t.tok->decode(ids, skip_special_tokens);
          },
          py::arg("ids"), py::arg("skip_special_tokens") = false)
      .def("render", &PyTokenizer::render, py::arg("messages_json"), py::arg("tools_json"),
           py::arg("add_generation_prompt"))
      .def_property_readonly("vocab_size", [](const PyTokenizer& t) { return t.tok->vocab_size(); })
      .def_property_readonly("eos_token_id", [](const PyTokenizer& t) { return t.tok->eos_token_id(); })
      .def_property_readonly("mask_token_id", [](const PyTokenizer& t) { return t.tok->mask_token_id(); })
      .def_property_readonly("pad_token_id", [](const PyTokenizer& t) { return t.tok->pad_token_id(); })
      .def_property_readonly("bos_token_id", [](const PyTokenizer& t) { return t.tok->bos_token_id(); })
      .def_property_readonly("chat_template", [](const PyTokenizer& t) { return t.tok->chat_template(); })
      .def("token_to_id", [](const PyTokenizer& t, const std::string& s) { return t.tok->token_to_id(s); })
      .def("id_to_token", [](const PyTokenizer& t, int64_t id) { return t.tok->id_to_token(id); });

  py::class_<PyModel>(m, "Model")
      .def_static(
          "load",
          [](const std::string& dir) {
            return PyModel{std::shared_ptr<const llada2::Model>(llada2::Model::load(dir))};
          },
          py::arg("path"), py::call_guard<py::gil_scoped_release>())
      .def("forward", &PyModel::forward, py::arg("input_ids"), py::arg("attention_mask"), py::arg("attention"),
           py::arg("block_length"), py::arg("exact"))
      .def_property_readonly("vocab_size", [](const PyModel& pm) { return pm.model->config().vocab_size; });

  py::class_<PyPipeline>(m, "Pipeline")
      .def_static(
          "from_pretrained",
          [](const std::string& dir, int64_t block_length, int64_t num_inference_steps, double threshold,
             std::optional<double> editing_threshold, int64_t minimal_topk) {
            llada2::SchedulerConfig sc{block_length, num_inference_steps, threshold, editing_threshold, minimal_topk};
            return PyPipeline{std::make_shared<const llada2::Pipeline>(llada2::Pipeline::from_pretrained(dir, sc))};
          },
          py::arg("path"), py::arg("block_length"), py::arg("num_inference_steps"), py::arg("threshold"),
          py::arg("editing_threshold"), py::arg("minimal_topk"), py::call_guard<py::gil_scoped_release>())
      .def("run", &PyPipeline::run, py::arg("call_json"), py::arg("input_ids"), py::arg("ids_dtype"),
           py::arg("attention_mask"), py::arg("mask_dtype"), py::arg("callback"), py::arg("exact"))
      .def_property_readonly("model",
                             [](const PyPipeline& p) {
                               // The pipeline owns its model through a shared pointer; share it without a copy.
                               return PyModel{std::shared_ptr<const llada2::Model>(p.pipe, &p.pipe->model())};
                             })
      .def_property_readonly("tokenizer", [](const PyPipeline& p) -> std::optional<PyTokenizer> {
        if (!p.pipe->tokenizer()) return std::nullopt;
        PyTokenizer t;
        t.tok = std::shared_ptr<const llada2::Tokenizer>(p.pipe, p.pipe->tokenizer());
        if (p.pipe->chat_template())
          t.tpl = std::shared_ptr<const llada2::ChatTemplate>(p.pipe, p.pipe->chat_template());
        return t;
      });
}
