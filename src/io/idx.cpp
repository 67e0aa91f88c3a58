#include "dae/io/idx.hpp"

#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "dae/core/error.hpp"
#include "dae/core/files.hpp"

namespace dae {

namespace {

// Decompressed input beyond this is refused, so a crafted .gz cannot exhaust memory.
constexpr std::size_t kMaxIdxBytes = std::size_t{1} << 31;

std::uint32_t big_endian_u32(const std::uint8_t* bytes) {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

// The data bytes an IDX header promises, or 0 if `bytes` do not hold a whole header yet.
// Throws when the promise is beyond kMaxIdxBytes: a 2 MB .gz must not make us allocate GBs.
std::size_t promised_size(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  if (bytes.size() < 4) return 0;
  const std::size_t header = 4 + 4 * std::size_t{bytes[3]};
  if (bytes.size() < header || bytes[3] < 1 || bytes[3] > 4) return 0;  // parse_idx says why
  std::size_t total = 1;
  for (std::size_t i = 0; i < bytes[3]; ++i) {
    const std::uint32_t dim = big_endian_u32(bytes.data() + 4 + 4 * i);
    if (dim != 0 && total > kMaxIdxBytes / dim)
      throw Error(path + ": header promises more than " + std::to_string(kMaxIdxBytes) +
                  " bytes of data");
    total *= dim;
  }
  return header + total;
}

// Appends decompressed bytes, learning the header's promise as soon as it is complete; false
// once there is enough to tell the data from what follows it (one byte past the promise).
class IdxBuffer {
 public:
  explicit IdxBuffer(const std::string& path) : path_(path) {}
  bool append(const std::uint8_t* data, std::size_t size) {
    bytes_.insert(bytes_.end(), data, data + size);
    if (expected_ == 0 && (expected_ = promised_size(bytes_, path_)) != 0)
      bytes_.reserve(expected_ + 1);
    return !((expected_ != 0 && bytes_.size() > expected_) || bytes_.size() > kMaxIdxBytes);
  }
  std::vector<std::uint8_t> take() { return std::move(bytes_); }

 private:
  const std::string& path_;
  std::vector<std::uint8_t> bytes_;
  std::size_t expected_ = 0;
};

// zlib's inflate state, ended exactly once however gunzip leaves (IdxBuffer::append can throw).
class Inflater {
 public:
  explicit Inflater(const std::string& path) {
    if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK) throw Error(path + ": cannot start zlib");
  }
  ~Inflater() { inflateEnd(&stream_); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  z_stream& get() { return stream_; }

 private:
  z_stream stream_{};
};

// Every gzip member of `compressed`, inflated into `out`. Anything after a member that is not
// another member is refused: zlib's gzread would ignore such trailing bytes silently.
void gunzip(const std::uint8_t* compressed, std::size_t size, const std::string& path,
            IdxBuffer& out) {
  Inflater inflater(path);
  z_stream& stream = inflater.get();
  stream.next_in = const_cast<Bytef*>(compressed);
  stream.avail_in = static_cast<uInt>(size);  // at most kMaxIdxBytes: fits
  std::vector<std::uint8_t> block(1 << 20);
  bool more = true;
  while (more) {
    stream.next_out = block.data();
    stream.avail_out = static_cast<uInt>(block.size());
    const int status = inflate(&stream, Z_NO_FLUSH);
    // Input that ends inside a member shows as no progress (Z_BUF_ERROR) or as a step that
    // consumed everything without filling the output.
    const bool cut = status == Z_OK && stream.avail_in == 0 && stream.avail_out != 0;
    if ((status != Z_OK && status != Z_STREAM_END) || cut)
      throw Error(path + ": corrupt or truncated gzip stream");
    more = out.append(block.data(), block.size() - stream.avail_out);
    if (status != Z_STREAM_END) continue;
    if (stream.avail_in == 0) break;  // the last member ended with the file
    if (stream.avail_in < 2 || stream.next_in[0] != 0x1f || stream.next_in[1] != 0x8b)
      throw Error(path + ": " + std::to_string(stream.avail_in) + " bytes after the gzip stream "
                  "that are not another gzip member");
    inflateReset(&stream);  // another member follows (`cat a.gz b.gz`)
  }
}

std::vector<std::uint8_t> read_whole_file(const std::string& path) {
  // A directory would read as a broken gzip stream and a FIFO could block forever.
  const std::string raw = read_small_regular_file(path, kMaxIdxBytes, "");
  IdxBuffer out(path);
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(raw.data());
  if (raw.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b)
    gunzip(bytes, raw.size(), path, out);
  else
    out.append(bytes, raw.size());  // not compressed
  return out.take();
}

std::string resolve(const std::string& dir, const std::string& name) {
  const std::filesystem::path raw = std::filesystem::path(dir) / name;
  const std::filesystem::path gz = std::filesystem::path(dir) / (name + ".gz");
  std::error_code ignored;
  const bool has_raw = std::filesystem::exists(raw, ignored);
  const bool has_gz = std::filesystem::exists(gz, ignored);
  // Two versions of one file may differ; taking either silently could train on the wrong one.
  if (has_raw && has_gz)
    throw Error(raw.string() + ": both it and " + gz.filename().string() +
                " exist; keep only one");
  if (has_raw) return raw.string();
  if (has_gz) return gz.string();
  throw Error(raw.string() + ": missing (neither it nor " + gz.filename().string() + " exists)");
}

}  // namespace

IdxHeader parse_idx_header(const std::uint8_t* bytes, std::size_t size, const std::string& name) {
  if (size < 4) throw Error(name + ": truncated header (" + std::to_string(size) + " bytes)");
  if (bytes[0] != 0 || bytes[1] != 0)
    throw Error(name + ": wrong magic number (not an IDX file)");
  if (bytes[2] != 0x08)
    throw Error(name + ": element type code " + std::to_string(bytes[2]) +
                " not supported (only unsigned bytes, code 8)");
  const std::size_t ndims = bytes[3];
  if (ndims < 1 || ndims > 4)
    throw Error(name + ": " + std::to_string(ndims) + " dimensions (expected 1 to 4)");
  IdxHeader header;
  header.bytes = 4 + 4 * ndims;
  if (size < header.bytes) throw Error(name + ": truncated header");
  for (std::size_t i = 0; i < ndims; ++i) {
    const std::uint32_t dim = big_endian_u32(bytes + 4 + 4 * i);
    header.dims.push_back(dim);
    if (dim != 0 && header.elements > kMaxIdxBytes / dim)
      throw Error(name + ": dimensions too large");
    header.elements *= dim;
  }
  return header;
}

IdxArray parse_idx(const std::uint8_t* bytes, std::size_t size, const std::string& name) {
  const IdxHeader header = parse_idx_header(bytes, size, name);
  if (size - header.bytes < header.elements)
    throw Error(name + ": truncated: header promises " + std::to_string(header.elements) +
                " bytes of data, file has " + std::to_string(size - header.bytes));
  if (size - header.bytes > header.elements)
    throw Error(name + ": " + std::to_string(size - header.bytes - header.elements) +
                " unexpected bytes after the data");
  IdxArray array;
  array.dims = header.dims;
  array.data.assign(bytes + header.bytes, bytes + header.bytes + header.elements);
  return array;
}

IdxArray read_idx(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_whole_file(path);
  return parse_idx(bytes.data(), bytes.size(), path);
}

std::vector<std::uint32_t> read_idx_dims(const std::string& path) {
  require_regular_file(path, kMaxIdxBytes, "");
  // gzread reads a raw file as it is and inflates a gzip one: only the header is needed here.
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw Error(path + ": cannot open");
  std::uint8_t start[4 + 4 * 4] = {};
  const int got = gzread(file, start, sizeof start);
  gzclose(file);
  if (got < 0) throw Error(path + ": corrupt gzip stream");
  return parse_idx_header(start, static_cast<std::size_t>(got), path).dims;
}

IdxArray read_idx_rows(const std::string& path, std::uint64_t first, std::uint64_t count) {
  require_regular_file(path, kMaxIdxBytes, "");
  std::ifstream file(path, std::ios::binary);
  std::uint8_t start[4 + 4 * 4] = {};
  file.read(reinterpret_cast<char*>(start), sizeof start);
  const auto got = static_cast<std::size_t>(file.gcount());
  IdxArray rows;
  if (got >= 2 && start[0] == 0x1f && start[1] == 0x8b) {
    // gzip cannot seek: the whole file is inflated (and checked), then sliced.
    rows = read_idx(path);
  } else {
    const IdxHeader header = parse_idx_header(start, got, path);
    const std::uint64_t size = std::filesystem::file_size(path);
    if (size - header.bytes != header.elements)
      throw Error(path + ": " + (size - header.bytes < header.elements ? "truncated: " : "") +
                  "header promises " + std::to_string(header.elements) + " bytes of data, file "
                  "has " + std::to_string(size - header.bytes));
    rows.dims = header.dims;
  }
  std::uint64_t row_bytes = 1;
  for (std::size_t i = 1; i < rows.dims.size(); ++i) row_bytes *= rows.dims[i];
  DAE_CHECK(first + count <= rows.dims[0], path + ": rows beyond the array");
  if (!rows.data.empty()) {  // inflated whole
    rows.data = std::vector<std::uint8_t>(
        rows.data.begin() + static_cast<std::ptrdiff_t>(first * row_bytes),
        rows.data.begin() + static_cast<std::ptrdiff_t>((first + count) * row_bytes));
  } else {
    rows.data.resize(count * row_bytes);
    file.clear();
    file.seekg(static_cast<std::streamoff>(4 + 4 * rows.dims.size() + first * row_bytes));
    file.read(reinterpret_cast<char*>(rows.data.data()),
              static_cast<std::streamsize>(rows.data.size()));
    if (static_cast<std::uint64_t>(file.gcount()) != rows.data.size())
      throw Error(path + ": read failed (the file changed while it was read?)");
  }
  rows.dims[0] = static_cast<std::uint32_t>(count);
  return rows;
}

std::vector<std::uint8_t> encode_idx(const IdxArray& array) {
  DAE_CHECK(!array.dims.empty() && array.dims.size() <= 4, "encode_idx: 1 to 4 dimensions");
  std::vector<std::uint8_t> bytes = {0, 0, 0x08, static_cast<std::uint8_t>(array.dims.size())};
  for (const std::uint32_t dim : array.dims)
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(static_cast<std::uint8_t>(dim >> shift));
  bytes.insert(bytes.end(), array.data.begin(), array.data.end());
  return bytes;
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
