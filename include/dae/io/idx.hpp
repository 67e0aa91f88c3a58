// defines: dae::IdxArray, dae::parse_idx, dae::read_idx, dae::read_idx_rows, dae::encode_idx,
//          dae::MnistSplit, dae::read_mnist_split
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dae {

// An unsigned-byte array in the IDX format MNIST is distributed in:
// magic 00 00 08 <ndims>, then ndims big-endian uint32 sizes, then the bytes row-major.
struct IdxArray {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};

// An IDX header: its dimensions, its length and the data bytes they promise.
struct IdxHeader {
  std::vector<std::uint32_t> dims;
  std::size_t bytes = 0;     // 4 + 4 * ndims
  std::size_t elements = 1;  // the product of dims
};
// Parses the header at the start of `bytes` (the data may follow or not); throws naming `name`.
IdxHeader parse_idx_header(const std::uint8_t* bytes, std::size_t size, const std::string& name);
// Parses IDX bytes already in memory; `name` only labels error messages.
IdxArray parse_idx(const std::uint8_t* bytes, std::size_t size, const std::string& name);
// Reads an IDX file, raw or gzip-compressed (detected from its content, not its name).
IdxArray read_idx(const std::string& path);
// The dimensions in an IDX file's header (raw or gzip), reading the header alone.
std::vector<std::uint32_t> read_idx_dims(const std::string& path);
// Rows [first, first + count) of dims[0] (dims[0] of the result is `count`): a raw file reads
// only those bytes, after checking that its size is what the header promises; a gzip file, which
// cannot seek, is inflated and checked whole, then sliced.
IdxArray read_idx_rows(const std::string& path, std::uint64_t first, std::uint64_t count);
// The bytes of an unsigned-byte IDX file holding `array`.
std::vector<std::uint8_t> encode_idx(const IdxArray& array);

// One split of an MNIST-format data set, validated: images [N, 28, 28], labels [N] in 0..9.
struct MnistSplit {
  std::uint32_t count = 0;
  std::vector<std::uint8_t> images;  // N * 28 * 28
  std::vector<std::uint8_t> labels;  // N
};

inline constexpr std::uint32_t kImageSide = 28;

// Reads `<dir>/<prefix>-images-idx3-ubyte` and `...-labels-idx1-ubyte` (each raw or `.gz`).
MnistSplit read_mnist_split(const std::string& dir, const std::string& prefix);
// Checks that images and labels form a valid split; throws naming `what` otherwise.
MnistSplit make_mnist_split(IdxArray images, IdxArray labels, const std::string& images_name,
                            const std::string& labels_name);

}  // namespace dae
