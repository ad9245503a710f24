// The mean of every row of a 2-d array, on worker processes, a few rows per chunk. DataIterator::rows
// splits the array into chunks of whole rows, given as element ranges; ArrayView::rows_of turns a chunk's
// range into a view of its rows, with their shape. Exits with 1 when a mean differs from a serial loop's.
#include <cmath>
#include <cstddef>
#include <iostream>
#include <vector>

#include <mpaio/mpaio.hpp>

/// Means of the rows of its chunk; the caller puts them in place.
struct RowMeansWorker : mpaio::Worker<RowMeansWorker, std::vector<double>> {
  using Worker::Worker;

  static std::vector<double> process(mpaio::ArrayView<const float> data, mpaio::Range chunk) {
    const mpaio::ArrayView<const float> rows = data.rows_of(chunk);  // shape {rows in the chunk, columns}
    std::vector<double> means;
    means.reserve(rows.rows());
    for (std::size_t i = 0; i < rows.rows(); ++i) {
      double sum = 0;
      for (float v : rows.row(i)) sum += v;
      means.push_back(sum / static_cast<double>(rows.row_size()));
    }
    return means;
  }

  // The chunk's first element, divided by the row length, is the index of its first row.
  void process_callback(std::vector<double> chunk_means, mpaio::Range chunk) {
    const std::size_t first_row = chunk.start / columns;
    for (std::size_t i = 0; i < chunk_means.size(); ++i) means[first_row + i] = chunk_means[i];
  }

  std::size_t columns = 0;
  std::vector<double> means;
};

int main() {
  constexpr std::size_t kRows = 1000;
  constexpr std::size_t kColumns = 37;
  mpaio::ProcessPoolExecutor pool{{.workers = 2}};
  auto table = mpaio::SharedArray<float>::create({kRows, kColumns});
  for (std::size_t i = 0; i < table.size(); ++i) table[i] = static_cast<float>(i % 101);

  RowMeansWorker worker{mpaio::DataIterator::rows(table.meta(), 64)};  // 64 rows per chunk, the last one short
  worker.columns = kColumns;
  worker.means.assign(kRows, -1.0);
  mpaio::WorkerOrchestrator orchestrator{pool, {&worker}};
  const mpaio::RunReport report = orchestrator.run_blocking();

  std::size_t wrong = 0;
  const auto view = table.view();
  for (std::size_t r = 0; r < kRows; ++r) {
    double sum = 0;
    for (float v : view.row(r)) sum += v;
    if (std::abs(worker.means[r] - sum / kColumns) > 1e-9) ++wrong;
  }
  std::cout << kRows << " row means in " << report.chunks.size() << " chunks, " << wrong << " wrong\n";
  return wrong == 0 ? 0 : 1;
}
