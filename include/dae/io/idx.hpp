// defines: dae::IdxArray, dae::parse_idx, dae::read_idx, dae::MnistSplit, dae::read_mnist_split
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

// Parses IDX bytes already in memory; `name` only labels error messages.
IdxArray parse_idx(const std::uint8_t* bytes, std::size_t size, const std::string& name);
// Reads an IDX file, raw or gzip-compressed (detected from its content, not its name).
IdxArray read_idx(const std::string& path);

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
