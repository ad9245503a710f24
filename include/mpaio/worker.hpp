#pragma once
/// @file worker.hpp
/// Worker<Derived, Result>: what to compute on each chunk, and what to do with each result.

#include <atomic>
#include <mutex>
#include <span>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <sys/types.h>
#include <unistd.h>

#include "mpaio/array_view.hpp"
#include "mpaio/codec.hpp"
#include "mpaio/data_iterator.hpp"
#include "mpaio/detail/chunk_call.hpp"
#include "mpaio/detail/worker_registry.hpp"
#include "mpaio/dtype.hpp"
#include "mpaio/range.hpp"
#include "mpaio/stop_token.hpp"

namespace mpaio {

/// The type-erased face of a worker, as the orchestrator and executors see it.
class WorkerBase {
 public:
  /// A worker over the chunks of one array.
  explicit WorkerBase(DataIterator chunks) : chunks_(std::move(chunks)) {}
  virtual ~WorkerBase() = default;
  WorkerBase(const WorkerBase&) = default;
  WorkerBase& operator=(const WorkerBase&) = default;

  /// The chunks this worker processes, and the array they belong to.
  [[nodiscard]] const DataIterator& chunks() const noexcept { return chunks_; }
  /// The worker's type name, for messages and reports.
  [[nodiscard]] virtual std::string type_name() const = 0;
  /// The element type `process` reads.
  [[nodiscard]] virtual DType element_type() const noexcept = 0;
  /// The entry point that runs one chunk in this process.
  [[nodiscard]] virtual detail::ChunkFn chunk_function() const noexcept = 0;
  /// The worker type's registered id, which names it in any process of this program.
  [[nodiscard]] virtual detail::WorkerTypeId worker_type() const noexcept = 0;
  /// Decodes one encoded result and hands it to the callback; runs on the event-loop thread.
  /// Throws DecodeError for a malformed record, and whatever the callback throws.
  virtual void deliver(std::span<const std::byte> encoded, Range range) = 0;

 private:
  DataIterator chunks_;
};

namespace detail {

template <class Fn>
struct ProcessSignature {
  static constexpr bool valid = false;
  static constexpr bool takes_stop_token = false;
  using result = void;
  using element = void;
};
template <class R, class T>
struct ProcessSignature<R (*)(ArrayView<const T>, Range)> {
  static constexpr bool valid = true;
  static constexpr bool takes_stop_token = false;
  using result = R;
  using element = T;
};
template <class R, class T>
struct ProcessSignature<R (*)(ArrayView<const T>, Range, const StopToken&)> : ProcessSignature<R (*)(ArrayView<const T>, Range)> {
  static constexpr bool takes_stop_token = true;
};
template <class R, class T>
struct ProcessSignature<R (*)(ArrayView<const T>, Range, StopToken)>
    : ProcessSignature<R (*)(ArrayView<const T>, Range, const StopToken&)> {};
template <class R, class... A>
struct ProcessSignature<R (*)(A...) noexcept> : ProcessSignature<R (*)(A...)> {};

template <class D>
concept HasStaticProcess = requires { +D::process; } && std::is_pointer_v<decltype(+D::process)> &&
                           std::is_function_v<std::remove_pointer_t<decltype(+D::process)>>;

template <class D>
concept HasInit = requires { D::init(); };

/// The signature of D::process; `valid` is false (with no hard error) when it is not a static function.
template <class D, bool = HasStaticProcess<D>>
struct SignatureOf : ProcessSignature<void> {};
template <class D>
struct SignatureOf<D, true> : ProcessSignature<decltype(+D::process)> {};

}  // namespace detail

/// CRTP base of a user's worker: Derived supplies
///
///     static Result process(mpaio::ArrayView<const T> data, mpaio::Range chunk);  // in a worker process
///     // or, to end early when the run is cancelled:
///     static Result process(mpaio::ArrayView<const T> data, mpaio::Range chunk, const mpaio::StopToken& stop);
///     void process_callback(Result result);                // on the event-loop thread, or:
///     void process_callback(Result result, mpaio::Range chunk);
///     static void init();                                  // optional: once per process, before its first chunk
///
/// `process` must be static (or a capture-free lambda assigned to a static member): it runs in another
/// process, reached through a plain function pointer, so it may use only its arguments and global state.
/// Result must be Encodable (see codec.hpp). Inherit the constructor with `using Worker::Worker;`.
template <class Derived, class Result>
class Worker : public WorkerBase {
 public:
  /// A worker over `chunks`.
  explicit Worker(DataIterator chunks) : WorkerBase(std::move(chunks)) {
    // Checked here, where Derived is complete (it is not where Worker itself is instantiated).
    using Signature = detail::SignatureOf<Derived>;
    static_assert(detail::HasStaticProcess<Derived>,
                  "mpaio::Worker: Derived::process must be a static member function (or a capture-free lambda "
                  "in a static member): `static Result process(mpaio::ArrayView<const T>, mpaio::Range)`. It runs "
                  "in a worker process and cannot use the worker object.");
    static_assert(Signature::valid,
                  "mpaio::Worker: Derived::process must take (mpaio::ArrayView<const T>, mpaio::Range[, const mpaio::StopToken&]) and return "
                  "the result");
    static_assert(std::is_same_v<typename Signature::result, Result>,
                  "mpaio::Worker<Derived, Result>: Derived::process must return Result");
    static_assert(Element<typename Signature::element>,
                  "mpaio::Worker: process reads an element type without a dtype (see dtype.hpp)");
    static_assert(Encodable<Result>,
                  "mpaio::Worker: Result cannot travel between processes: use a trivially copyable type, "
                  "std::string, std::vector of trivially copyable, a type with a cereal serialize function, or "
                  "specialise mpaio::Codec");
  }

  [[nodiscard]] std::string type_name() const override { return detail::demangle(typeid(Derived).name()); }
  [[nodiscard]] DType element_type() const noexcept override {
    return dtype_of<typename detail::SignatureOf<Derived>::element>();
  }
  [[nodiscard]] detail::ChunkFn chunk_function() const noexcept override { return &run_chunk; }
  [[nodiscard]] detail::WorkerTypeId worker_type() const noexcept override { return type_id_; }
  void deliver(std::span<const std::byte> encoded, Range range) override {
    Result result = Codec<Result>::decode(encoded);
    auto& self = static_cast<Derived&>(*this);
    if constexpr (requires { self.process_callback(std::move(result), range); }) {
      self.process_callback(std::move(result), range);
    } else {
      static_assert(requires { self.process_callback(std::move(result)); },
                    "mpaio::Worker: Derived must define `void process_callback(Result)` or "
                    "`void process_callback(Result, mpaio::Range)`");
      self.process_callback(std::move(result));
    }
  }

 private:
  /// Decodes a result nobody will receive and drops it: what it holds (pool references) is released.
  static void discard_result(std::span<const std::byte> encoded) noexcept {
    try {
      (void)Codec<Result>::decode(encoded);
    } catch (...) {
    }
  }

  static void run_chunk(const detail::ChunkCall& call) {
    using element = typename detail::SignatureOf<Derived>::element;
    if constexpr (detail::HasInit<Derived>) {
      // Once per process, keyed on the pid rather than a std::once_flag: a worker forked (through the
      // fork server) after this process ran init() inherits a set flag, but not what init() set up.
      static std::mutex mutex;
      static std::atomic<pid_t> done_in{0};
      const pid_t self = ::getpid();
      if (done_in.load(std::memory_order_acquire) != self) {
        std::lock_guard lock(mutex);
        if (done_in.load(std::memory_order_relaxed) != self) {
          Derived::init();
          done_in.store(self, std::memory_order_release);
        }
      }
    }
    ArrayView<const element> view(reinterpret_cast<const element*>(call.data), call.shape);
    if constexpr (detail::SignatureOf<Derived>::takes_stop_token) {
      Codec<Result>::encode(Derived::process(view, call.range, StopToken(call.stop)), *call.out);
    } else {
      Codec<Result>::encode(Derived::process(view, call.range), *call.out);
    }
  }

  // Registered during static initialisation, in every process of the program, under an id derived from the
  // type's name: the same in a process forked from this one and in a separate launch of the program.
  static inline const detail::WorkerTypeId type_id_ =
      detail::register_worker_type(typeid(Derived).name(), &run_chunk, &discard_result);
};

}  // namespace mpaio
