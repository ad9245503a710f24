#pragma once
/// @file stage.hpp
/// Stage<Derived>: a stateful step of a pipeline. Its object is built once in each of its processes (from
/// its Config), then handles item after item.

#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>

#include "mpaio/codec.hpp"
#include "mpaio/detail/chunk_call.hpp"
#include "mpaio/pool_array.hpp"
#include "mpaio/stop_token.hpp"

namespace mpaio {

/// What a stage's `process` learns about the item it handles.
struct ItemContext {
  std::uint64_t item = 0;  ///< the item's id: 0, 1, 2... in the order items were pushed
  unsigned attempt = 0;    ///< 0 the first time; 1, 2... when a failure made the pipeline try it again
  unsigned replica = 0;    ///< which of the stage's processes handles it
  StopToken stop;          ///< true once the pipeline is cancelled: a long item may end early
};

/// The base of a pipeline stage (CRTP, like Worker):
///
///     struct Detector : mpaio::Stage<Detector> {
///       struct Config { int threshold; };              // optional; Encodable (travels to each process)
///       explicit Detector(const Config& config);        // runs once in each of the stage's processes
///       Boxes process(const Frame& frame, const mpaio::ItemContext& item);  // then once per item
///     };
///
/// `process` takes one argument per input port (a stage with two inputs joins both results of the same
/// item) and, optionally last, the ItemContext; it may keep state between items. Inputs and the result are
/// Encodable types (they travel through the pipeline's rings) or PoolArrays (only a reference travels: a
/// frame fanned out to two stages is the same memory in both, and its block is freed once the item is done).
/// An exception fails the item (retried if the stage allows), naming the stage, replica, pid and item.
template <class Derived>
class Stage {
 public:
  /// The name a stage of this type gets unless StageOptions::name says otherwise.
  static std::string type_name() { return detail::demangle(typeid(Derived).name()); }
};

namespace detail {

template <class T>
inline constexpr bool is_pool_array = false;
template <class E>
inline constexpr bool is_pool_array<PoolArray<E>> = true;

/// Types that can travel on a pipeline's edges.
template <class T>
concept PortValue = Encodable<T> || is_pool_array<T>;

template <class Fn>
struct StageMember {
  static constexpr bool valid = false;
};
template <class C, class R, class... A>
struct StageMember<R (C::*)(A...)> {
  static constexpr bool valid = true;
  using result = R;
  using args = std::tuple<A...>;
};
template <class C, class R, class... A>
struct StageMember<R (C::*)(A...) const> : StageMember<R (C::*)(A...)> {};
template <class C, class R, class... A>
struct StageMember<R (C::*)(A...) noexcept> : StageMember<R (C::*)(A...)> {};
template <class C, class R, class... A>
struct StageMember<R (C::*)(A...) const noexcept> : StageMember<R (C::*)(A...)> {};

/// The argument list without a trailing ItemContext.
template <class Tuple>
struct StripContext;
template <>
struct StripContext<std::tuple<>> {
  using inputs = std::tuple<>;
  static constexpr bool takes_context = false;
};
template <class... A>
struct StripContext<std::tuple<A...>> {
  using all = std::tuple<std::remove_cvref_t<A>...>;
  static constexpr std::size_t n = sizeof...(A);
  static constexpr bool takes_context = std::is_same_v<std::tuple_element_t<n - 1, all>, ItemContext>;
  template <std::size_t... I>
  static auto first(std::index_sequence<I...>) -> std::tuple<std::tuple_element_t<I, all>...>;
  using inputs = decltype(first(std::make_index_sequence<takes_context ? n - 1 : n>{}));
};

/// What a stage type reads and returns, from its `process` member.
template <class S>
struct StageTraits {
  static_assert(StageMember<decltype(&S::process)>::valid,
                "a stage needs one non-template member function `Out process(In..., const ItemContext&)`");
  using member = StageMember<decltype(&S::process)>;
  using output = std::remove_cvref_t<typename member::result>;
  using inputs = typename StripContext<typename member::args>::inputs;
  static constexpr bool takes_context = StripContext<typename member::args>::takes_context;
  static constexpr std::size_t arity = std::tuple_size_v<inputs>;
};

template <class S>
concept HasConfig = requires { typename S::Config; };

template <class S>
struct StageConfig {
  struct None {};
  using type = None;
};
template <HasConfig S>
struct StageConfig<S> {
  using type = typename S::Config;
};

}  // namespace detail

}  // namespace mpaio
