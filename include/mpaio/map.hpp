#pragma once
/// @file map.hpp
/// mpaio::map: a function over items on worker processes, as a one-stage pipeline (what Pool.imap does).
///
///     std::vector<mpaio::PipelineResult<double>> scores =
///         mpaio::map<Scorer>(documents, {.replicas = 4, .retries = 1});
///
/// Each of the stage's processes constructs its Scorer once, then handles item after item. Results come in
/// input order (or completion order, PipelineOptions::order), one per item: a value, or an ItemFailure
/// naming the item, the replica, its pid and the cause (ErrorPolicy::fail_fast throws the first instead).

#include <tuple>
#include <utility>
#include <vector>

#include "mpaio/pipeline.hpp"

namespace mpaio {

namespace detail {
template <class S>
using MapInput = std::tuple_element_t<0, typename StageTraits<S>::inputs>;
}  // namespace detail

/// Runs every item through a stage of type S (constructed from `config` in each of its processes) on a
/// loop of its own; returns when every item has ended.
template <class S>
  requires detail::HasConfig<S>
std::vector<PipelineResult<typename detail::StageTraits<S>::output>> map(std::vector<detail::MapInput<S>> items,
                                                                         const typename S::Config& config,
                                                                         StageOptions stage = {},
                                                                         PipelineOptions options = {}) {
  static_assert(detail::StageTraits<S>::arity == 1, "map() takes a stage whose process has one input");
  PipelineBuilder<detail::MapInput<S>> graph;
  auto output = graph.template add<S>(std::move(stage), config, graph.input());
  return graph.run(output, std::move(items), std::move(options));
}

/// map() for a stage without a Config (or with a default one).
template <class S>
std::vector<PipelineResult<typename detail::StageTraits<S>::output>> map(std::vector<detail::MapInput<S>> items,
                                                                         StageOptions stage = {},
                                                                         PipelineOptions options = {}) {
  static_assert(detail::StageTraits<S>::arity == 1, "map() takes a stage whose process has one input");
  PipelineBuilder<detail::MapInput<S>> graph;
  auto output = graph.template add<S>(std::move(stage), graph.input());
  return graph.run(output, std::move(items), std::move(options));
}

}  // namespace mpaio
