#pragma once
// The caller's side of a set of record rings, on an Asio loop: it watches the eventfd the producers ring,
// drains every ring and hands each record to its owner, arms the doorbells before the loop sleeps, and
// collects what producers hold without ringing (results of short chunks, announced in batches) once they
// have waited `hold_limit`. Nothing here blocks the loop.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "process/record_ring.hpp"
#include "process/wakeup.hpp"

namespace mpaio::detail {

class Drainer {
 public:
  /// What the drainer hands its records to; called on the loop.
  class Owner {
   public:
    /// Handles one record of source `index`; false stops the draining (the owner stopped the run).
    virtual bool on_record(std::size_t index, const RecordReader::Record& record) = 0;
    /// Source `index` published a record no correct producer writes: it is not read again.
    virtual void on_malformed(std::size_t index) = 0;
    /// Whether producers may be holding records without ringing (the hold timer then collects them).
    [[nodiscard]] virtual bool may_hold() const = 0;

   protected:
    ~Owner() = default;
  };

  /// One ring: its reader, the doorbell its producer rings, the event count its producer sleeps on when
  /// the ring is full.
  struct Source {
    RecordReader reader;
    DoorbellState* doorbell = nullptr;
    EventCountState* producer_wake = nullptr;
  };

  /// `eventfd` is rung by every producer (the drainer reads it, does not own it); records go to `owner`.
  Drainer(int eventfd, std::chrono::nanoseconds hold_limit, Owner& owner);
  ~Drainer();
  Drainer(const Drainer&) = delete;
  Drainer& operator=(const Drainer&) = delete;

  /// Sets (or replaces, for a new producer) source `index`; it is read from now on.
  void set_source(std::size_t index, const Source& source);
  /// Stops reading source `index` (its producer is gone or not trusted).
  void remove_source(std::size_t index) noexcept;

  /// Starts watching on `loop`; every source is armed.
  void start(const asio::any_io_executor& loop);
  /// Stops watching; pending handlers do nothing any more (the loop may be destroyed later).
  void stop() noexcept;
  [[nodiscard]] bool running() const noexcept;

  /// Hands over every record source `index` has published (also when not watching); returns false if the
  /// owner stopped.
  bool drain(std::size_t index);
  /// Drains every source until none has records, arming them on the way; then, if the owner says producers
  /// may hold records, makes sure the hold timer will look again.
  void collect();
  /// Producers may hold records from now on (the owner just gave them work): makes sure the hold timer
  /// will look, even if the last collect() found no reason to.
  void expect_held();
  /// Whether any source has records not handed over.
  [[nodiscard]] bool pending() const noexcept;

 private:
  struct Watch;
  void wait_for_ring();
  void watch_held();

  int eventfd_;
  std::chrono::nanoseconds hold_limit_;
  std::vector<Source> sources_;
  std::vector<bool> enabled_;
  Owner& owner_;
  std::shared_ptr<Watch> watch_;
};

}  // namespace mpaio::detail
