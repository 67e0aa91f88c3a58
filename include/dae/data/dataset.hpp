// defines: the data-file format (dae::write_data_file), dae::shard_range, dae::Shard,
//          dae::BatchOrder (per-epoch shuffled batches of a shard)
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>

#include "dae/io/idx.hpp"

namespace dae {

// data.h5 layout: /train/images and /test/images uint8 [N, 28, 28] (chunked, compressed),
// /train/labels and /test/labels uint8 [N]; root attributes `source` and `format_version`.
inline constexpr std::int64_t kDataFormatVersion = 1;

// Writes the data file atomically: to `path.tmp.<pid>` first, renamed over `path` when complete,
// so a failure never leaves a half-written file under the final name.
void write_data_file(const std::string& path, const MnistSplit& train, const MnistSplit& test,
                     const std::string& source);

// Rows [first, first + count) of `total` that rank `rank` of `world` owns: contiguous blocks,
// sizes differ by at most one, every row owned by exactly one rank.
std::pair<std::uint64_t, std::uint64_t> shard_range(std::uint64_t total, int rank, int world);

// One rank's rows of one split, read from the data file by hyperslab (never the whole split).
struct Shard {
  std::string split;          // "train" or "test"
  std::uint64_t total_rows = 0;  // rows in the whole split
  std::uint64_t first_row = 0;   // first global row held here
  torch::Tensor images;       // uint8 [rows, 28, 28]
  torch::Tensor labels;       // uint8 [rows]

  std::int64_t rows() const { return images.size(0); }
  // Reads rows [first, first + count) of `split`; validates the file's layout first.
  static Shard read(const std::string& path, const std::string& split, std::uint64_t first,
                    std::uint64_t count);
  // This rank's block; fails when the split has fewer rows than ranks.
  static Shard read_for_rank(const std::string& path, const std::string& split, int rank,
                             int world);
};

// Rows in `path`'s `split`, after checking the layout (uint8 [N, 28, 28] images, N labels).
std::uint64_t count_rows(const std::string& path, const std::string& split);
// The whole file checked before any training: its format version, both splits' layouts, and
// at least one row in each (an empty test split would only fail at the final evaluation).
void check_data_file(const std::string& path);

// Turns uint8 images [B, 28, 28] into float [B, 1, 28, 28] in [0, 1].
torch::Tensor to_unit_float(const torch::Tensor& images);

// Where a rank is in its stream of batches; part of the saved training state.
struct BatchCursor {
  std::int64_t epoch = 0;     // completed passes over the shard
  std::int64_t position = 0;  // next index into this epoch's order
};

// Each epoch visits every row of a shard once, in an order shuffled by (seed, rank, epoch):
// the order is a pure function of the cursor, so saving the cursor saves the stream.
class BatchOrder {
 public:
  BatchOrder(std::int64_t rows, std::uint64_t seed, int rank);
  // Local row indices (int64 [batch]) of the next batch; crosses epoch boundaries as needed.
  torch::Tensor next(std::int64_t batch, BatchCursor& cursor);

 private:
  void shuffle_for(std::int64_t epoch);

  std::int64_t rows_;
  std::uint64_t seed_;
  int rank_;
  std::int64_t order_epoch_ = -1;
  std::vector<std::int64_t> order_;
};

}  // namespace dae
