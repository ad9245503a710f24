#include "mpaio/progress_bar.hpp"

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

namespace mpaio {

namespace {

constexpr std::size_t kBarWidth = 24;

/// 12345678 -> "12.3M".
std::string si(double value) {
  static constexpr const char* kUnits[] = {"", "k", "M", "G", "T"};
  std::size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(kUnits)) value /= 1000, ++unit;
  return fmt::format("{:.{}f}{}", value, unit == 0 ? 0 : 1, kUnits[unit]);
}

std::string clock(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{}:{:02}", s / 60, s % 60);
}

void write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a progress bar never fails the run
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

ProgressBar::ProgressBar(std::size_t total_chunks, std::size_t total_elements, Options options)
    : total_chunks_(total_chunks),
      total_elements_(total_elements),
      options_(options),
      enabled_(options.mode == ProgressMode::always ||
               (options.mode == ProgressMode::automatic && ::isatty(options.fd) == 1)),
      start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() {
  if (!finished_) finish();
}

std::string ProgressBar::render(std::size_t chunks_done, std::size_t total_chunks, std::size_t elements_done,
                                std::size_t total_elements, double seconds, std::string_view unit,
                                std::string_view rate_unit) {
  const double fraction = total_chunks == 0 ? 1.0 : static_cast<double>(chunks_done) / static_cast<double>(total_chunks);
  const auto filled = static_cast<std::size_t>(fraction * kBarWidth);
  const double rate = seconds > 0 ? static_cast<double>(elements_done) / seconds : 0;
  std::string eta = "ETA --:--";
  if (rate > 0 && elements_done < total_elements) {
    eta = "ETA " + clock(static_cast<double>(total_elements - elements_done) / rate);
  } else if (chunks_done >= total_chunks) {
    eta = "ETA 0:00";
  }
  const std::size_t digits = fmt::formatted_size("{}", total_chunks);
  return fmt::format("[{}{}] {:>{}}/{} {} {:5.1f}%  {} {}/s  {}", std::string(filled, '#'),
                     std::string(kBarWidth - filled, '-'), chunks_done, digits, total_chunks, unit, 100.0 * fraction,
                     si(rate), rate_unit, eta);
}

void ProgressBar::update(std::size_t chunks_done, std::size_t elements_done) {
  chunks_ = chunks_done;
  elements_ = elements_done;
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < options_.min_interval) return;
  last_draw_ = now;
  draw(false);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

void ProgressBar::draw(bool final) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string line;
  if (final) {
    line = fmt::format("{}/{} {} in {:.2f} s, {} {}/s", chunks_, total_chunks_, options_.unit, seconds,
                       si(seconds > 0 ? static_cast<double>(elements_) / seconds : 0), options_.rate_unit);
  } else {
    line = render(chunks_, total_chunks_, elements_, total_elements_, seconds, options_.unit, options_.rate_unit);
  }
  const std::size_t width = line.size();
  if (width < last_width_) line += std::string(last_width_ - width, ' ');  // wipe a longer previous line
  last_width_ = width;
  write_all(options_.fd, "\r" + line + (final ? "\n" : ""));
}

}  // namespace mpaio
