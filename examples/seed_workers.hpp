#pragma once
// The two workers of the seed demo: a sum of int64 and an in-order concatenation of strings. A file that
// only defines workers includes worker.hpp (and fixed_string.hpp for string elements), not mpaio.hpp: it
// needs neither Asio nor the executors.

#include <cstdint>
#include <map>
#include <string>

#include <mpaio/fixed_string.hpp>
#include <mpaio/worker.hpp>

/// Sums its chunk of an int64 array; the caller adds the partial sums up.
struct AddIntWorker : mpaio::Worker<AddIntWorker, std::int64_t> {
  using Worker::Worker;

  // Runs in a worker process: reads the shared array in place, returns 8 bytes.
  static std::int64_t process(mpaio::ArrayView<const std::int64_t> data, mpaio::Range chunk) {
    std::int64_t sum = 0;
    for (std::int64_t v : data.slice(chunk)) sum += v;
    return sum;
  }

  // Runs in the calling process, on the event-loop thread, as each partial sum lands.
  void process_callback(std::int64_t partial) { total += partial; }

  std::int64_t total = 0;
};

/// numpy's `<U6`: what np.array(["foo_0", ..., "foo_99"]) stores.
using Str6 = mpaio::FixedUnicode<6>;

/// Concatenates its chunk of a string array; the caller puts the pieces back in index order.
struct ConcatStrWorker : mpaio::Worker<ConcatStrWorker, std::string> {
  using Worker::Worker;

  static std::string process(mpaio::ArrayView<const Str6> data, mpaio::Range chunk) {
    std::string out;
    for (const Str6& s : data.slice(chunk)) out += s.str();
    return out;
  }

  // The two-argument callback gets the chunk too, so pieces can be placed by position whatever
  // order they finish in.
  void process_callback(std::string piece, mpaio::Range chunk) { pieces[chunk.start] = std::move(piece); }

  [[nodiscard]] std::string result() const {
    std::string out;
    for (const auto& [start, piece] : pieces) out += piece;
    return out;
  }

  std::map<std::size_t, std::string> pieces;
};
