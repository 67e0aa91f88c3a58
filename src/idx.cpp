#include "dae/idx.hpp"

#include <zlib.h>

#include <filesystem>

#include "dae/error.hpp"

namespace dae {

namespace {

// Decompressed input beyond this is refused, so a crafted .gz cannot exhaust memory.
constexpr std::size_t kMaxIdxBytes = std::size_t{1} << 31;

std::uint32_t big_endian_u32(const std::uint8_t* bytes) {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

std::vector<std::uint8_t> read_whole_file(const std::string& path) {
  // gzread passes bytes through unchanged when the file is not gzip-compressed.
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw Error(path + ": cannot open");
  std::vector<std::uint8_t> bytes;
  std::vector<std::uint8_t> block(1 << 20);
  int got = 0;
  while ((got = gzread(file, block.data(), static_cast<unsigned>(block.size()))) > 0) {
    bytes.insert(bytes.end(), block.begin(), block.begin() + got);
    if (bytes.size() > kMaxIdxBytes) {
      gzclose(file);
      throw Error(path + ": larger than " + std::to_string(kMaxIdxBytes) + " bytes");
    }
  }
  const bool failed = got < 0;
  gzclose(file);
  if (failed) throw Error(path + ": corrupt or truncated gzip stream");
  return bytes;
}

std::string resolve(const std::string& dir, const std::string& name) {
  const std::filesystem::path raw = std::filesystem::path(dir) / name;
  if (std::filesystem::exists(raw)) return raw.string();
  const std::filesystem::path gz = std::filesystem::path(dir) / (name + ".gz");
  if (std::filesystem::exists(gz)) return gz.string();
  throw Error(raw.string() + ": missing (neither it nor " + gz.filename().string() + " exists)");
}

}  // namespace

IdxArray parse_idx(const std::uint8_t* bytes, std::size_t size, const std::string& name) {
  if (size < 4) throw Error(name + ": truncated header (" + std::to_string(size) + " bytes)");
  if (bytes[0] != 0 || bytes[1] != 0)
    throw Error(name + ": wrong magic number (not an IDX file)");
  if (bytes[2] != 0x08)
    throw Error(name + ": element type code " + std::to_string(bytes[2]) +
                " not supported (only unsigned bytes, code 8)");
  const std::size_t ndims = bytes[3];
  if (ndims < 1 || ndims > 4)
    throw Error(name + ": " + std::to_string(ndims) + " dimensions (expected 1 to 4)");
  const std::size_t header = 4 + 4 * ndims;
  if (size < header) throw Error(name + ": truncated header");

  IdxArray array;
  std::size_t elements = 1;
  for (std::size_t i = 0; i < ndims; ++i) {
    const std::uint32_t dim = big_endian_u32(bytes + 4 + 4 * i);
    array.dims.push_back(dim);
    if (dim != 0 && elements > kMaxIdxBytes / dim)
      throw Error(name + ": dimensions too large");
    elements *= dim;
  }
  if (size - header < elements)
    throw Error(name + ": truncated: header promises " + std::to_string(elements) +
                " bytes of data, file has " + std::to_string(size - header));
  if (size - header > elements)
    throw Error(name + ": " + std::to_string(size - header - elements) +
                " unexpected bytes after the data");
  array.data.assign(bytes + header, bytes + header + elements);
  return array;
}

IdxArray read_idx(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_whole_file(path);
  return parse_idx(bytes.data(), bytes.size(), path);
}

MnistSplit make_mnist_split(IdxArray images, IdxArray labels, const std::string& images_name,
                            const std::string& labels_name) {
  if (images.dims.size() != 3 || images.dims[1] != kImageSide || images.dims[2] != kImageSide)
    throw Error(images_name + ": wrong dimensions (expected N x 28 x 28 images)");
  if (labels.dims.size() != 1) throw Error(labels_name + ": wrong dimensions (expected N labels)");
  if (images.dims[0] != labels.dims[0])
    throw Error(images_name + ": " + std::to_string(images.dims[0]) + " images but " +
                labels_name + " has " + std::to_string(labels.dims[0]) + " labels");
  if (images.dims[0] == 0) throw Error(images_name + ": no images");
  for (std::size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] > 9)
      throw Error(labels_name + ": label " + std::to_string(labels.data[i]) + " at index " +
                  std::to_string(i) + " is not a digit class 0..9");
  }
  MnistSplit split;
  split.count = images.dims[0];
  split.images = std::move(images.data);
  split.labels = std::move(labels.data);
  return split;
}

MnistSplit read_mnist_split(const std::string& dir, const std::string& prefix) {
  const std::string images_path = resolve(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = resolve(dir, prefix + "-labels-idx1-ubyte");
  return make_mnist_split(read_idx(images_path), read_idx(labels_path), images_path, labels_path);
}

}  // namespace dae
