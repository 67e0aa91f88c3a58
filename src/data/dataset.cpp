#include "dae/data/dataset.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>

#include "dae/core/error.hpp"
#include "dae/core/files.hpp"
#include "dae/core/seed.hpp"
#include "dae/io/h5.hpp"

namespace dae {

namespace {

constexpr std::uint64_t kChunkRows = 1000;

void write_split(H5File& file, const std::string& split, const MnistSplit& data) {
  const H5Storage storage{kChunkRows, 4, false};
  file.write<std::uint8_t>("/" + split + "/images", {data.count, kImageSide, kImageSide},
                           data.images.data(), storage);
  file.write<std::uint8_t>("/" + split + "/labels", {data.count}, data.labels.data(), storage);
}

}  // namespace

void write_data_file(const std::string& path, const MnistSplit& train, const MnistSplit& test,
                     const std::string& source) {
  // Built in memory, then one durable write: no half-written data file under its final name.
  H5File file = H5File::create_in_memory(path);
  write_split(file, "train", train);
  write_split(file, "test", test);
  file.write_attribute("/", "source", source);
  file.write_attribute("/", "format_version", kDataFormatVersion);
  const std::vector<std::uint8_t> bytes = file.image();
  file.close();
  write_file_durably(path, bytes);
}

std::pair<std::uint64_t, std::uint64_t> shard_range(std::uint64_t total, int rank, int world) {
  const auto ranks = static_cast<std::uint64_t>(world);
  const auto r = static_cast<std::uint64_t>(rank);
  const std::uint64_t base = total / ranks, extra = total % ranks;
  // The first `extra` ranks take one row more.
  const std::uint64_t first = r * base + std::min(r, extra);
  return {first, base + (r < extra ? 1 : 0)};
}

std::uint64_t count_rows(const std::string& path, const std::string& split) {
  const H5File file = H5File::open_read_only(path);
  if (!file.has("/" + split + "/images") || !file.has("/" + split + "/labels"))
    throw Error(path + ": /" + split + "/images or /" + split +
                "/labels missing (not a data file made by dae_prepare)");
  const auto image_dims = file.dims("/" + split + "/images");
  const auto label_dims = file.dims("/" + split + "/labels");
  if (image_dims.size() != 3 || image_dims[1] != kImageSide || image_dims[2] != kImageSide)
    throw Error(path + ": /" + split + "/images: expected shape [N, 28, 28]");
  if (label_dims.size() != 1 || label_dims[0] != image_dims[0])
    throw Error(path + ": /" + split + "/labels: expected " + std::to_string(image_dims[0]) +
                " labels");
  // Pixels are bytes 0..255: float or wider images would be converted silently, values out of
  // range clipped.
  for (const char* dataset : {"images", "labels"}) {
    const std::string name = "/" + split + "/" + dataset;
    if (!file.stores_uint8(name))
      throw Error(path + ": " + name + ": stored as " + file.type_text(name) +
                  ", expected uint8 (make data files with dae_prepare)");
    file.check_storage_of(name);
  }
  return image_dims[0];
}

void check_data_file(const std::string& path) {
  std::int64_t version = -1;
  {
    const H5File file = H5File::open_read_only(path);
    try {
      version = file.read_int_attribute("/", "format_version");
    } catch (const Error&) {
      throw Error(path + ": no format_version attribute (not a data file made by dae_prepare)");
    }
  }
  if (version != kDataFormatVersion)
    throw Error(path + ": data format version " + std::to_string(version) +
                ", this dae_dist reads version " + std::to_string(kDataFormatVersion));
  for (const char* split : {"train", "test"})
    if (count_rows(path, split) == 0)
      throw Error(path + ": /" + split + " has no rows");
}

Shard Shard::read(const std::string& path, const std::string& split, std::uint64_t first,
                  std::uint64_t count) {
  Shard shard;
  shard.split = split;
  shard.total_rows = count_rows(path, split);
  shard.first_row = first;
  const H5File file = H5File::open_read_only(path);
  shard.images = torch::empty({static_cast<std::int64_t>(count), kImageSide, kImageSide},
                              torch::kUInt8);
  shard.labels = torch::empty({static_cast<std::int64_t>(count)}, torch::kUInt8);
  file.read_rows("/" + split + "/images", first, count, shard.images.data_ptr<std::uint8_t>());
  file.read_rows("/" + split + "/labels", first, count, shard.labels.data_ptr<std::uint8_t>());
  return shard;
}

Shard Shard::read_for_rank(const std::string& path, const std::string& split, int rank,
                           int world) {
  const std::uint64_t total = count_rows(path, split);
  if (total < static_cast<std::uint64_t>(world))
    throw Error(path + ": /" + split + " has " + std::to_string(total) +
                " rows, fewer than the " + std::to_string(world) + " ranks");
  const auto [first, count] = shard_range(total, rank, world);
  try {
    return read(path, split, first, count);
  } catch (const Error& error) {
    // Only this rank's rows may be unreadable; the job's one line must say whose they are.
    throw Error(std::string(error.what()) + " (rank " + std::to_string(rank) + " of " +
                std::to_string(world) + "'s shard)");
  }
}

torch::Tensor to_unit_float(const torch::Tensor& images) {
  return images.unsqueeze(1).to(torch::kFloat32).div_(255.0);
}

BatchOrder::BatchOrder(std::int64_t rows, std::uint64_t seed, int rank)
    : rows_(rows), seed_(seed), rank_(rank) {
  DAE_CHECK(rows > 0, "BatchOrder: a shard needs at least one row");
}

void BatchOrder::shuffle_for(std::int64_t epoch) {
  order_.resize(static_cast<std::size_t>(rows_));
  std::iota(order_.begin(), order_.end(), 0);
  // std::shuffle's algorithm is implementation-defined; a hand-written Fisher-Yates over
  // mt19937_64 (whose output the standard fixes) keeps orders identical across toolchains.
  std::mt19937_64 engine(mix_seed({seed_, static_cast<std::uint64_t>(rank_),
                                   static_cast<std::uint64_t>(epoch), 0xBA7C4ull}));
  for (std::size_t i = order_.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(engine() % i);
    std::swap(order_[i - 1], order_[j]);
  }
  order_epoch_ = epoch;
}

torch::Tensor BatchOrder::next(std::int64_t batch, BatchCursor& cursor) {
  // A cursor restored from a checkpoint of another data file (or a corrupt one) can point past
  // this shard; indexing the order with it would read out of bounds.
  if (cursor.epoch < 0 || cursor.position < 0 || cursor.position > rows_)
    throw Error("data position (epoch " + std::to_string(cursor.epoch) + ", row " +
                std::to_string(cursor.position) + ") is outside this rank's " +
                std::to_string(rows_) + "-row shard (checkpoint of another data file?)");
  torch::Tensor indices = torch::empty({batch}, torch::kInt64);
  auto* out = indices.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < batch; ++i) {
    if (cursor.position == rows_) {
      ++cursor.epoch;
      cursor.position = 0;
    }
    if (order_epoch_ != cursor.epoch) shuffle_for(cursor.epoch);
    out[i] = order_[static_cast<std::size_t>(cursor.position++)];
  }
  return indices;
}

}  // namespace dae
