#pragma once
// What a typed pipeline graph becomes for the engine that runs it: stages and ports with their types
// erased. Values on the ports are held by the caller as bytes (the encoded value, or the reference of a
// pool array together with the handle that keeps it alive); stage processes turn bytes back into values.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mpaio/codec.hpp"
#include "mpaio/error.hpp"
#include "mpaio/pool_array.hpp"
#include "mpaio/shared_memory_pool.hpp"
#include "mpaio/stage.hpp"

namespace mpaio {

/// How one stage runs.
struct StageOptions {
  /// Its name in errors, counters and traces (default: the stage type's name). Unique in a pipeline.
  std::string name{};
  /// Processes that run it, each with its own object; items go to the least busy one.
  unsigned replicas = 1;
  /// Extra attempts for an item whose attempt failed here (exception, crash or timeout).
  unsigned retries = 0;
  /// An item running longer than this is stopped (its replica is replaced) and fails or is retried with
  /// ItemFailureKind::timeout (0: no limit).
  std::chrono::milliseconds timeout{0};
  /// Constructions that may fail in a row in one replica (each after a growing pause) before the stage is
  /// given up and the pipeline fails with StageInitError.
  unsigned max_init_failures = 3;
};

namespace detail {

/// A value on a port, as the caller holds it: the bytes that travel to stages, and what keeps a pool
/// array alive until the item is done.
struct HeldValue {
  std::vector<std::byte> wire;
  std::shared_ptr<void> keep;
};

/// How values of T travel: the caller holds them, stage processes receive them and send results back.
template <class T>
struct PortWire {
  static HeldValue hold(T&& value) {
    HeldValue held;
    Codec<T>::encode(value, held.wire);
    return held;
  }
  /// What a stage sent back, held by the caller.
  static HeldValue hold_result(std::span<const std::byte> bytes) { return {{bytes.begin(), bytes.end()}, nullptr}; }
  static void send_result(const T& value, std::vector<std::byte>& out) { Codec<T>::encode(value, out); }
  static T receive(std::span<const std::byte> wire) { return Codec<T>::decode(wire); }
  static T take(HeldValue& held) { return Codec<T>::decode(held.wire); }
};

/// Pool arrays travel as references: the caller's handle keeps the block until the item is done, stage
/// processes attach it, and an array a stage returns comes back as an in-flight transfer the caller adopts.
template <Element E>
struct PortWire<PoolArray<E>> {
  static HeldValue hold(PoolArray<E>&& value) {
    if (!value) throw InvalidArgument("pipeline: an empty PoolArray cannot travel (moved from or reset?)");
    HeldValue held;
    const PoolArrayRef ref = value.ref();
    append_bytes(held.wire, &ref, sizeof ref);
    held.keep = std::make_shared<PoolArray<E>>(std::move(value));
    return held;
  }
  static HeldValue hold_result(std::span<const std::byte> bytes) { return hold(Codec<PoolArray<E>>::decode(bytes)); }
  static void send_result(const PoolArray<E>& value, std::vector<std::byte>& out) { Codec<PoolArray<E>>::encode(value, out); }
  static PoolArray<E> receive(std::span<const std::byte> wire) {
    if (wire.size() != sizeof(PoolArrayRef)) throw_size_mismatch("PoolArrayRef", sizeof(PoolArrayRef), wire.size());
    PoolArrayRef ref;
    std::memcpy(&ref, wire.data(), sizeof ref);
    SharedMemoryPool* pool = SharedMemoryPool::find(ref.pool_id);
    if (pool == nullptr) {
      throw Error("the item's PoolArray is in a pool this stage process does not hold: create the "
                  "SharedMemoryPool before the pipeline (or attach it by name in the stage's constructor)");
    }
    return pool->attach<E>(ref);
  }
  static PoolArray<E> take(HeldValue& held) { return std::move(*std::static_pointer_cast<PoolArray<E>>(held.keep)); }
};

/// A stage object in its process, behind a type-erased face.
class StageInstance {
 public:
  virtual ~StageInstance() = default;
  /// Handles one item: turns `inputs` into the stage's arguments, calls `process`, appends the result's
  /// bytes to `out`. Throws what `process` throws.
  virtual void process(std::span<const std::span<const std::byte>> inputs, const ItemContext& item,
                       std::vector<std::byte>& out) = 0;
};

/// Builds a stage object from its encoded Config (in the stage's process).
using StageFactory = std::unique_ptr<StageInstance> (*)(std::span<const std::byte> config);
/// Takes what a stage returned into the caller's hands.
using ResultHolder = HeldValue (*)(std::span<const std::byte> bytes);

struct StageSpec {
  std::string name;
  StageOptions options;
  std::vector<std::uint32_t> inputs;  // port ids, in the order `process` takes them
  std::uint32_t output = 0;           // port id
  std::vector<std::byte> config;      // encoded
  StageFactory construct = nullptr;
};

struct PortSpec {
  std::string type;                  // the value type's name, for messages
  int producer = -1;                 // the stage that produces it; -1: the pipeline's input
  ResultHolder hold_result = nullptr;
};

struct PipelineSpec {
  std::vector<PortSpec> ports;  // port 0 is the pipeline's input
  std::vector<StageSpec> stages;
  std::uint32_t output = 0;
};

template <class S>
class TypedStage final : public StageInstance {
  using Traits = StageTraits<S>;

 public:
  explicit TypedStage(std::span<const std::byte> config) : stage_(make(config)) {}

  void process(std::span<const std::span<const std::byte>> inputs, const ItemContext& item,
               std::vector<std::byte>& out) override {
    call(inputs, item, out, std::make_index_sequence<Traits::arity>{});
  }

  static std::unique_ptr<StageInstance> construct(std::span<const std::byte> config) {
    return std::make_unique<TypedStage>(config);
  }

 private:
  static std::unique_ptr<S> make(std::span<const std::byte> config) {
    if constexpr (HasConfig<S>) {
      return std::make_unique<S>(Codec<typename S::Config>::decode(config));
    } else {
      return std::make_unique<S>();
    }
  }

  template <std::size_t... I>
  void call(std::span<const std::span<const std::byte>> inputs, const ItemContext& item, std::vector<std::byte>& out,
            std::index_sequence<I...>) {
    using Inputs = typename Traits::inputs;
    using Out = typename Traits::output;
    std::tuple<std::tuple_element_t<I, Inputs>...> args{PortWire<std::tuple_element_t<I, Inputs>>::receive(inputs[I])...};
    if constexpr (Traits::takes_context) {
      const Out result = stage_->process(std::move(std::get<I>(args))..., item);
      PortWire<Out>::send_result(result, out);
    } else {
      (void)item;
      const Out result = stage_->process(std::move(std::get<I>(args))...);
      PortWire<Out>::send_result(result, out);
    }
  }

  std::unique_ptr<S> stage_;
};

}  // namespace detail

}  // namespace mpaio
