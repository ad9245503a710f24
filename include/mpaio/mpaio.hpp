#pragma once
/// @file mpaio.hpp
/// Umbrella header: everything a user of mpaio needs.

#include "mpaio/array_meta.hpp"
#include "mpaio/array_view.hpp"
#include "mpaio/codec.hpp"
#include "mpaio/cpu_monitor.hpp"
#include "mpaio/data_iterator.hpp"
#include "mpaio/dtype.hpp"
#include "mpaio/error.hpp"
#include "mpaio/executor.hpp"
#include "mpaio/fixed_string.hpp"
#include "mpaio/inline_executor.hpp"
#include "mpaio/process_pool_executor.hpp"
#include "mpaio/progress_bar.hpp"
#include "mpaio/range.hpp"
#include "mpaio/run_report.hpp"
#include "mpaio/shared_array.hpp"
#include "mpaio/shared_memory.hpp"
#include "mpaio/stop_token.hpp"
#include "mpaio/thread_pool_executor.hpp"
#include "mpaio/worker.hpp"
#include "mpaio/worker_orchestrator.hpp"
