#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "llada2/error.h"
#include "llada2/quantize.h"
#include "progress.h"

namespace llada2::cli {

int cmd_quantize(int argc, char** argv) {
  CLI::App app{
      "Write a quantized copy of a checkpoint that generate / bench load like any other (docs/quantization.md).\n"
      "Linear weights (attention, MLP, experts, shared experts, lm_head) become int8 (q8) or packed int4 (q4)\n"
      "with float32 per-group absmax scales; embeddings, norms and the router keep their dtype.",
      "llada2 quantize"};
  std::string model, type, out;
  int64_t group = 0;
  bool quiet = false;
  app.add_option("-m,--model", model, "source checkpoint folder (F32 / BF16 / F16)")->required()->type_name("DIR");
  app.add_option("--type", type, "q8 | q4")->required()->type_name("TYPE");
  app.add_option("--out", out, "output folder (created; must be empty)")->required()->type_name("DIR");
  app.add_option("--group", group,
                 "elements per scale along a row: a power of two >= 16 (default 64 for q8, 32 for q4)")
      ->type_name("G");
  std::string layout = "rows";
  app.add_option("--layout", layout,
                 "rows (default; every CPU) | panels: the int8 kernels' order, loads without repacking on\n"
                 "AVX-512 VNNI CPUs (others unpack it as they go, slower)")
      ->type_name("LAYOUT");
  app.add_flag("--quiet", quiet, "no progress on stderr");
  if (int rc = parse_args(app, argc, argv); rc >= 0) return rc;

  QuantizeOptions o;
  o.type = parse_quant_type(type);
  if (app.count("--group") && group <= 0) throw InputError("--group: expected a power of two >= 16");
  o.group = group;
  if (layout != "rows" && layout != "panels")
    throw InputError("--layout: expected rows or panels, got '" + layout + "'");
  o.panels = layout == "panels";
  ByteProgress progress("quantizing " + model, quiet, " read");
  o.progress = [&](uint64_t done, uint64_t total) { progress(done, total); };
  QuantizeStats s = quantize_checkpoint(model, out, o);
  if (!quiet) {
    const double secs = progress.seconds();
    std::fprintf(stderr, "wrote %s: %lld tensors quantized, %lld kept; %.1f MB -> %.1f MB in %.1f s\n", out.c_str(),
                 (long long)s.quantized, (long long)s.kept, double(s.in_bytes) / 1e6, double(s.out_bytes) / 1e6, secs);
  }
  return 0;
}

}  // namespace llada2::cli
