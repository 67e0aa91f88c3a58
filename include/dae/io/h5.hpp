// defines: dae::H5Handle (RAII hid_t), dae::H5File (typed datasets and attributes by path)
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dae {

// Owns one HDF5 identifier and closes it with the matching H5?close exactly once.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  H5Handle& operator=(H5Handle&& other) noexcept;
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  herr_t close();  // like reset(), but reports the closer's result

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// Maps a C++ element type to its HDF5 native type.
template <typename T> hid_t h5_type();
template <> inline hid_t h5_type<std::uint8_t>() { return H5T_NATIVE_UINT8; }
template <> inline hid_t h5_type<float>() { return H5T_NATIVE_FLOAT; }
template <> inline hid_t h5_type<double>() { return H5T_NATIVE_DOUBLE; }
template <> inline hid_t h5_type<std::int64_t>() { return H5T_NATIVE_INT64; }

// How a dataset is stored: contiguous, or chunked along the first dimension with deflate, and
// optionally with a Fletcher32 checksum that HDF5 verifies on every read.
struct H5Storage {
  std::uint64_t chunk_rows = 0;  // 0: contiguous
  int deflate_level = 0;         // 0..9, chunked datasets only
  bool checksum = false;         // Fletcher32, chunked datasets only
};

// An HDF5 file addressed by absolute object paths ("/train/images"). Every failure throws
// dae::Error naming the file and the object.
class H5File {
 public:
  static H5File open_read_only(const std::string& path);
  static H5File create(const std::string& path);  // truncates
  // For tools and tests that edit a file we wrote ourselves (no crafted-file defences).
  static H5File open_read_write(const std::string& path);
  // A file that lives only in memory (HDF5's core driver without backing store); `name` labels
  // errors. Its bytes come from image().
  static H5File create_in_memory(const std::string& name);

  const std::string& path() const { return path_; }
  hid_t id() const { return file_.get(); }

  bool has(const std::string& object) const;
  void create_group(const std::string& group);  // and its parents; no-op if it exists
  std::uint64_t child_count(const std::string& group) const;
  std::vector<std::uint64_t> dims(const std::string& dataset) const;
  bool stores_uint8(const std::string& dataset) const;         // unsigned 8-bit integers
  std::string type_text(const std::string& dataset) const;     // e.g. "float of 4 bytes"
  bool has_checksum(const std::string& dataset) const;         // a Fletcher32 filter
  // The checks every read makes of the storage (filters present, not virtual, every chunk
  // written and inside the file, a bounded chunk count), without reading: throws dae::Error.
  void check_storage_of(const std::string& dataset) const;

  template <typename T>
  void write(const std::string& dataset, const std::vector<std::uint64_t>& dims, const T* data,
             const H5Storage& storage = {});
  template <typename T>
  std::vector<T> read(const std::string& dataset) const;
  // Reads rows [first, first + count) of dims[0] into `out` with a hyperslab selection, so only
  // those rows (and the chunks that hold them) are touched.
  template <typename T>
  void read_rows(const std::string& dataset, std::uint64_t first, std::uint64_t count,
                 T* out) const;

  void write_attribute(const std::string& object, const std::string& name,
                       const std::string& value);
  void write_attribute(const std::string& object, const std::string& name, std::int64_t value);
  void write_attribute(const std::string& object, const std::string& name, double value);
  std::string read_string_attribute(const std::string& object, const std::string& name) const;
  std::int64_t read_int_attribute(const std::string& object, const std::string& name) const;

  void flush();
  // The complete file as bytes (flushes first): what create_in_memory() files are written with.
  std::vector<std::uint8_t> image();
  void close();  // throws if HDF5 cannot write the file's last metadata

 private:
  H5File(std::string path, H5Handle file) : path_(std::move(path)), file_(std::move(file)) {}
  H5Handle open_dataset(const std::string& dataset) const;
  H5Handle open_object(const std::string& object) const;
  H5Handle open_single_attribute(const std::string& object, const std::string& name) const;
  std::string where(const std::string& object) const { return path_ + ": " + object; }
  template <typename T>
  void write_scalar_attribute(const std::string& object, const std::string& name, T value);
  template <typename T>
  T read_scalar_attribute(const std::string& object, const std::string& name) const;

  std::string path_;
  H5Handle file_;
};

}  // namespace dae
