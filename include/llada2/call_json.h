// Pipeline calls as JSON objects whose keys are the Python keyword arguments
// (the `--call FILE.json` contract of the CLI, reused by the server).
#pragma once

#include <nlohmann/json.hpp>

#include "llada2/pipeline.h"
#include "llada2/scheduler.h"

namespace llada2 {

struct CallSpec {
  GenerateOptions options;
  std::optional<SchedulerConfig> scheduler;  // from the optional "scheduler" object
  // "exact": true / false: SPEC A6's arithmetic mode for the call (runtime::set_exact); a process-wide
  // setting, so the caller applies it, not the pipeline.
  std::optional<bool> exact;
};

// Parses a call object; `base` supplies the scheduler config fields the object leaves out.
// Unknown keys and wrong types are InputErrors naming the key.
CallSpec parse_call_json(const nlohmann::ordered_json& call, const SchedulerConfig& base = {});

// {"sequences": [[...]], "texts": [...] | null, "stats": {...}}
nlohmann::json output_to_json(const PipelineOutput& out);

}  // namespace llada2
