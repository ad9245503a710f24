#pragma once
// A stage replica's process: constructs the stage object once, then takes items from its task ring, runs
// them through the object and sends each result (or failure) back on its result ring.

#include "mpaio/detail/pipeline_spec.hpp"
#include "pipeline/stage_channel.hpp"
#include "process/fork_server.hpp"

namespace mpaio::detail {

/// The main of replica `replica` of `stage`, in channel slot `context.slot`; returns its exit status.
int stage_process_main(const StageProcessSettings& settings, const StageSpec& stage, unsigned replica,
                       const ChildContext& context);

}  // namespace mpaio::detail
