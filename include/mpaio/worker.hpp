#pragma once
/// @file worker.hpp
/// Worker<Derived, Result>: what to compute on each chunk, and what to do with each result.

#include <atomic>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

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

  /// The worker's parameters (Derived::Params), or nullptr when its type has none.
  [[nodiscard]] const void* params_object() const noexcept { return params_.get(); }
  /// The parameters encoded with their Codec, as they travel to worker processes (once per run).
  [[nodiscard]] std::span<const std::byte> encoded_params() const noexcept { return encoded_params_; }

 protected:
  /// Keeps the parameters and their encoding.
  void set_params(std::shared_ptr<const void> params, std::vector<std::byte> encoded) {
    params_ = std::move(params);
    encoded_params_ = std::move(encoded);
  }

 private:
  DataIterator chunks_;
  std::shared_ptr<const void> params_;  // shared by copies of the worker: it never changes
  std::vector<std::byte> encoded_params_;
};

namespace detail {

template <class Fn>
struct ProcessSignature {
  static constexpr bool valid = false;
  static constexpr bool takes_stop_token = false;
  static constexpr bool takes_params = false;
  using result = void;
  using element = void;
  using params = void;
};
template <class R, class T>
struct ProcessSignature<R (*)(ArrayView<const T>, Range)> {
  static constexpr bool valid = true;
  static constexpr bool takes_stop_token = false;
  static constexpr bool takes_params = false;
  using result = R;
  using element = T;
  using params = void;
};
template <class R, class T, class P>
struct ProcessSignature<R (*)(ArrayView<const T>, Range, const P&)> : ProcessSignature<R (*)(ArrayView<const T>, Range)> {
  static constexpr bool takes_params = true;
  using params = P;
};
template <class R, class T, class P>
struct ProcessSignature<R (*)(ArrayView<const T>, Range, const P&, const StopToken&)>
    : ProcessSignature<R (*)(ArrayView<const T>, Range, const P&)> {
  static constexpr bool takes_stop_token = true;
};
template <class R, class T, class P>
struct ProcessSignature<R (*)(ArrayView<const T>, Range, const P&, StopToken)>
    : ProcessSignature<R (*)(ArrayView<const T>, Range, const P&, const StopToken&)> {};
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

template <class D>
concept HasParams = requires { typename D::Params; };

/// D::Params, or void when D declares none.
template <class D>
struct ParamsTypeOf {
  using type = void;
};
template <HasParams D>
struct ParamsTypeOf<D> {
  using type = typename D::Params;
};

/// The signature of D::process; `valid` is false (with no hard error) when it is not a static function.
template <class D, bool = HasStaticProcess<D>>
struct SignatureOf : ProcessSignature<void> {};
template <class D>
struct SignatureOf<D, true> : ProcessSignature<decltype(+D::process)> {};

/// The compile-time checks of a worker type, in the order they are reported. Each holds only if the ones
/// before it hold, so that a worker gets one error, the first, and no follow-ups that would be untrue.
template <class D, class Result>
struct WorkerChecks {
  using Signature = SignatureOf<D>;
  static constexpr bool static_process = HasStaticProcess<D>;
  static constexpr bool signature = static_process && Signature::valid;
  static constexpr bool result = signature && std::is_same_v<typename Signature::result, Result>;
  static constexpr bool element = result && Element<typename Signature::element>;
  static constexpr bool encodable = element && Encodable<Result>;
  /// process takes `const Params&` exactly when D declares Params, and they are the same type.
  static constexpr bool params = encodable && Signature::takes_params == HasParams<D> &&
                                 std::is_same_v<typename Signature::params, typename ParamsTypeOf<D>::type>;
  static constexpr bool params_encodable = params && (!HasParams<D> || Encodable<typename ParamsTypeOf<D>::type>);
  /// Every check holds: the worker's code can be generated.
  static constexpr bool passed = params_encodable;
};

}  // namespace detail

/// CRTP base of a user's worker: Derived supplies
///
///     static Result process(mpaio::ArrayView<const T> data, mpaio::Range chunk);  // in a worker process
///     // or, with parameters given when the worker is made (`using Params = P;`, P Encodable):
///     static Result process(mpaio::ArrayView<const T> data, mpaio::Range chunk, const Params& params);
///     // or, to end early when the run is cancelled (after the parameters, if any):
///     static Result process(mpaio::ArrayView<const T> data, mpaio::Range chunk, const mpaio::StopToken& stop);
///     void process_callback(Result result);                // on the event-loop thread, or:
///     void process_callback(Result result, mpaio::Range chunk);
///     static void init();                                  // optional: once per process, before its first chunk
///
/// `process` must be static (or a capture-free lambda assigned to a static member): it runs in another
/// process and may use only its arguments: the array, the range and the parameters. The parameters travel
/// to each worker process once per run (not per chunk) and are decoded there once; state the program sets
/// after the pool was made never reaches its workers, parameters do. Result (and Params) must be Encodable
/// (see codec.hpp). Inherit the constructors with `using Worker::Worker;` and make a worker as
/// `Derived{chunks}`, or `Derived{chunks, params}` when it has parameters.
template <class Derived, class Result>
class Worker : public WorkerBase {
 public:
  /// A worker over `chunks`, of a type without parameters.
  explicit Worker(DataIterator chunks) : WorkerBase(std::move(chunks)) {
    check();
    static_assert(!detail::WorkerChecks<Derived, Result>::passed || !detail::HasParams<Derived>,
                  "mpaio::Worker: Derived has Params: make it with them, `Derived{chunks, params}`");
  }

  /// A worker over `chunks` whose `process` gets `params` (Derived::Params) in every worker process.
  template <class P>
  Worker(DataIterator chunks, P&& params) : WorkerBase(std::move(chunks)) {
    check();
    if constexpr (detail::WorkerChecks<Derived, Result>::passed) {
      static_assert(detail::HasParams<Derived>,
                    "mpaio::Worker: Derived was given parameters but declares none: add `using Params = ...;`");
      using Params = typename detail::ParamsTypeOf<Derived>::type;
      auto object = std::make_shared<const Params>(std::forward<P>(params));
      std::vector<std::byte> encoded;
      Codec<Params>::encode(*object, encoded);
      set_params(std::move(object), std::move(encoded));
    }
  }

  /// The worker's parameters (only for a type that has them).
  template <class D = Derived>
  [[nodiscard]] const typename detail::ParamsTypeOf<D>::type& params() const noexcept {
    return *static_cast<const typename detail::ParamsTypeOf<D>::type*>(params_object());
  }

  [[nodiscard]] std::string type_name() const override { return detail::demangle(typeid(Derived).name()); }
  [[nodiscard]] DType element_type() const noexcept override {
    if constexpr (detail::WorkerChecks<Derived, Result>::passed) {
      return dtype_of<typename detail::SignatureOf<Derived>::element>();
    } else {
      return {};  // not reached: the constructor's check failed
    }
  }
  [[nodiscard]] detail::ChunkFn chunk_function() const noexcept override { return &run_chunk; }
  [[nodiscard]] detail::WorkerTypeId worker_type() const noexcept override { return type_id_; }
  void deliver(std::span<const std::byte> encoded, Range range) override {
    if constexpr (detail::WorkerChecks<Derived, Result>::passed) {
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
  }

 private:
  /// The compile-time checks: here, where Derived is complete (it is not where Worker is instantiated).
  static constexpr void check() {
    using Checks = detail::WorkerChecks<Derived, Result>;
    static_assert(Checks::static_process,
                  "mpaio::Worker: Derived::process must be a static member function (or a capture-free lambda "
                  "in a static member): `static Result process(mpaio::ArrayView<const T>, mpaio::Range)`. It runs "
                  "in a worker process and cannot use the worker object.");
    static_assert(!Checks::static_process || Checks::signature,
                  "mpaio::Worker: Derived::process must take (mpaio::ArrayView<const T>, mpaio::Range[, const "
                  "mpaio::StopToken&]) and return the result; the view is of const T, since workers read the shared "
                  "array and never write it");
    static_assert(!Checks::signature || Checks::result,
                  "mpaio::Worker<Derived, Result>: Derived::process must return Result");
    static_assert(!Checks::result || Checks::element,
                  "mpaio::Worker: process reads an element type without a dtype (see dtype.hpp)");
    static_assert(!Checks::element || Checks::encodable,
                  "mpaio::Worker: Result cannot travel between processes: use a trivially copyable type, "
                  "std::string, std::vector of trivially copyable, a type with a cereal serialize function (another "
                  "standard container needs its cereal header, e.g. <cereal/types/map.hpp> for std::map), or "
                  "specialise mpaio::Codec");
    static_assert(!Checks::encodable || Checks::params,
                  "mpaio::Worker: Derived::process takes `const Params&` after the Range exactly when Derived declares "
                  "`using Params = ...;`, and of that type");
    static_assert(!Checks::params || Checks::params_encodable,
                  "mpaio::Worker: Derived::Params cannot travel between processes: make it Encodable (see codec.hpp)");
  }

  /// Decodes a result nobody will receive and drops it: what it holds (pool references) is released.
  static void discard_result(std::span<const std::byte> encoded) noexcept {
    if constexpr (detail::WorkerChecks<Derived, Result>::passed) {
      try {
        (void)Codec<Result>::decode(encoded);
      } catch (...) {
      }
    }
  }

  static void run_chunk(const detail::ChunkCall& call) {
    // After a failed check the body is left out, so that the check's message is the only one.
    if constexpr (detail::WorkerChecks<Derived, Result>::passed) run_checked_chunk(call);
  }

  static void run_checked_chunk(const detail::ChunkCall& call) {
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
    using Signature = detail::SignatureOf<Derived>;
    if constexpr (Signature::takes_params && Signature::takes_stop_token) {
      Codec<Result>::encode(Derived::process(view, call.range, params_in(call), StopToken(call.stop)), *call.out);
    } else if constexpr (Signature::takes_params) {
      Codec<Result>::encode(Derived::process(view, call.range, params_in(call)), *call.out);
    } else if constexpr (Signature::takes_stop_token) {
      Codec<Result>::encode(Derived::process(view, call.range, StopToken(call.stop)), *call.out);
    } else {
      Codec<Result>::encode(Derived::process(view, call.range), *call.out);
    }
  }

  /// The parameters of a chunk's worker: the object itself in the process that made it, else decoded once
  /// per run from the bytes the run sent.
  static const auto& params_in(const detail::ChunkCall& call) {
    using Params = typename detail::ParamsTypeOf<Derived>::type;
    if (call.params == nullptr || (call.params->object == nullptr && call.params->decoded == nullptr)) {
      throw InvalidArgument("no parameters reached this worker process");
    }
    if (call.params->object != nullptr) return *static_cast<const Params*>(call.params->object);
    std::shared_ptr<void>& decoded = *call.params->decoded;
    if (!decoded) decoded = std::make_shared<Params>(Codec<Params>::decode(call.params->encoded));
    return *static_cast<const Params*>(decoded.get());
  }

  // Registered during static initialisation, in every process of the program, under an id derived from the
  // type's name: the same in a process forked from this one and in a separate launch of the program.
  static inline const detail::WorkerTypeId type_id_ =
      detail::register_worker_type(typeid(Derived).name(), &run_chunk, &discard_result);
};

}  // namespace mpaio
