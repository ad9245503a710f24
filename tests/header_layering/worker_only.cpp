// A translation unit that only defines workers: the demo's workers, and every header a file of workers may
// need (the worker, its element and result types, arrays, pool arrays, registered exceptions). It must
// compile without Asio, fmt, spdlog or nlohmann-json: those serve the files that run the workers, and cost
// a worker file about 40,000 preprocessed lines (Issue 11 item 17). check_worker_headers.cmake compiles it
// and names the include chain that brought one of them in.
#include "../../examples/seed_workers.hpp"

#include <mpaio/array_meta.hpp>
#include <mpaio/array_view.hpp>
#include <mpaio/codec.hpp>
#include <mpaio/data_iterator.hpp>
#include <mpaio/dtype.hpp>
#include <mpaio/error.hpp>
#include <mpaio/exception_registry.hpp>
#include <mpaio/fixed_string.hpp>
#include <mpaio/pool_array.hpp>
#include <mpaio/range.hpp>
#include <mpaio/shared_array.hpp>
#include <mpaio/shared_memory.hpp>
#include <mpaio/stop_token.hpp>
#include <mpaio/worker.hpp>

// Every Asio header includes asio/detail/config.hpp; the others define their version.
#if defined(ASIO_DETAIL_CONFIG_HPP) || defined(ASIO_VERSION)
#error "a worker-only translation unit includes Asio"
#endif
#if defined(FMT_VERSION) || defined(SPDLOG_VERSION) || defined(NLOHMANN_JSON_VERSION_MAJOR)
#error "a worker-only translation unit includes fmt, spdlog or nlohmann-json"
#endif

static_assert(sizeof(AddIntWorker) > 0 && sizeof(ConcatStrWorker) > 0);
