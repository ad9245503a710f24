#pragma once
/// @file progress_bar.hpp
/// ProgressBar: one terminal line redrawn in place: chunks done / total, percent, elements per second, ETA.

#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mpaio {

/// When a progress bar is drawn.
enum class ProgressMode {
  off,
  automatic,  ///< only when the output is a terminal
  always,     ///< even when the output is a file or a pipe
};

/// A one-line progress bar for a run, redrawn in place ('\r') at most every `min_interval`, finished by
/// a summary line. Draws nothing unless its output is a terminal or it is forced (ProgressMode::always).
class ProgressBar {
 public:
  struct Options {
    ProgressMode mode = ProgressMode::automatic;
    int fd = STDERR_FILENO;                        ///< where to draw
    std::chrono::milliseconds min_interval{100};   ///< at most 10 redraws a second
    std::string unit = "chunks";                   ///< what is counted ("frames" for a pipeline)
    std::string rate_unit = "elements";            ///< what the rate counts
  };

  ProgressBar(std::size_t total_chunks, std::size_t total_elements, Options options);
  ProgressBar(std::size_t total_chunks, std::size_t total_elements) : ProgressBar(total_chunks, total_elements, Options{}) {}
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  /// Finishes the line if finish() was not called.
  ~ProgressBar();

  /// Whether this bar draws at all.
  [[nodiscard]] bool enabled() const noexcept { return enabled_; }
  /// Records progress; redraws if `min_interval` has passed since the last drawing.
  void update(std::size_t chunks_done, std::size_t elements_done);
  /// Replaces the bar by a final summary line.
  void finish();

  /// The bar's text for the given state (no '\r'), e.g.
  /// "[#######-------------]  350/1000 chunks  35.0%  12.3M elements/s  ETA 0:04".
  static std::string render(std::size_t chunks_done, std::size_t total_chunks, std::size_t elements_done,
                            std::size_t total_elements, double seconds, std::string_view unit = "chunks",
                            std::string_view rate_unit = "elements");

 private:
  void draw(bool final);

  std::size_t total_chunks_;
  std::size_t total_elements_;
  Options options_;
  bool enabled_ = false;
  bool finished_ = false;
  std::size_t chunks_ = 0;
  std::size_t elements_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_{};
  std::size_t last_width_ = 0;
};

}  // namespace mpaio
