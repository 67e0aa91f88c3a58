#include "dae/io/h5.hpp"

#include <H5PLpublic.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>

#include <new>
#include <set>
#include <tuple>
#include <type_traits>

#include "dae/core/error.hpp"
#include "dae/core/files.hpp"
#include "dae/io/h5_guards.hpp"

namespace dae {

namespace {

// HDF5 calls return a negative value (herr_t or hid_t) on failure; HDF5's own error stack is
// silenced at start (below), so the message names the call and where it was made.
#define DAE_CHECK_H5(call)                                                                     \
  do {                                                                                         \
    if ((call) < 0)                                                                            \
      throw Error(std::string("HDF5: ") + #call + " failed (" +                                \
                  source_location(__FILE__, __LINE__) + ")");                                  \
  } while (0)

// Far beyond any data file (60 000 MNIST images take 47 MB): refused before HDF5 reads it.
constexpr std::uint64_t kMaxHdf5FileBytes = std::uint64_t{1} << 40;

// Once per process, before any file is touched:
// - HDF5 prints its error stack to stderr by default; we report one line of our own instead.
// - A file names its filters by number, and HDF5 looks for an unknown one as a shared library
//   in HDF5_PLUGIN_PATH. Our files only use built-in filters (deflate, shuffle, Fletcher32), so
//   plugin loading is switched off: opening a crafted file is then an error, never a library
//   loaded and run.
void initialise_hdf5() {
  static const bool initialised = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    H5PLset_loading_state(0);
    return true;
  }();
  (void)initialised;
}

H5Handle space_of(const std::vector<std::uint64_t>& dims) {
  std::vector<hsize_t> h5_dims(dims.begin(), dims.end());
  return H5Handle(H5Screate_simple(static_cast<int>(h5_dims.size()), h5_dims.data(), nullptr),
                  H5Sclose);
}

}  // namespace

H5Handle& H5Handle::operator=(H5Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

void H5Handle::reset() { close(); }

herr_t H5Handle::close() {
  const herr_t result = id_ >= 0 && closer_ != nullptr ? closer_(id_) : 0;
  id_ = -1;
  return result;
}

H5File H5File::open_read_only(const std::string& path) {
  initialise_hdf5();
  // A FIFO or device would block HDF5's first read forever.
  require_regular_file(path, kMaxHdf5FileBytes, "");
  // H5Fis_hdf5 tells "not an HDF5 file" apart from "cannot open" for a clearer message.
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    FILE* probe = std::fopen(path.c_str(), "rb");
    if (probe == nullptr) throw Error(path + ": cannot open (no such file or not readable)");
    std::fclose(probe);
    throw Error(path + ": not an HDF5 file (or truncated)");
  }
  probe_in_child(path);
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) {
    // HDF5 1.10 refuses a file another process holds open for writing (its file locking); say
    // so rather than "corrupt".
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const bool locked = fd >= 0 && ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    if (fd >= 0) ::close(fd);
    if (locked)
      throw Error(path + ": locked by another process that is writing it (HDF5 file locking); "
                  "wait for the writer to finish");
    throw Error(path + ": cannot open as HDF5 (corrupt or truncated)");
  }
  return H5File(path, std::move(file));
}

H5File H5File::create(const std::string& path) {
  initialise_hdf5();
  H5Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) throw Error(path + ": cannot create HDF5 file");
  return H5File(path, std::move(file));
}

H5File H5File::open_read_write(const std::string& path) {
  initialise_hdf5();
  H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) throw Error(path + ": cannot open for writing");
  return H5File(path, std::move(file));
}

H5File H5File::create_in_memory(const std::string& name) {
  initialise_hdf5();
  const H5Handle access(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // Grows in 1 MiB steps; backing_store 0: nothing is ever written to `name`.
  if (!access.valid() || H5Pset_fapl_core(access.get(), std::size_t{1} << 20, 0) < 0)
    throw Error(name + ": cannot set up an in-memory HDF5 file");
  H5Handle file(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.get()), H5Fclose);
  if (!file.valid()) throw Error(name + ": cannot create in-memory HDF5 file");
  return H5File(name, std::move(file));
}

std::vector<std::uint8_t> H5File::image() {
  flush();
  const ssize_t size = H5Fget_file_image(file_.get(), nullptr, 0);
  if (size < 0) throw Error(path_ + ": cannot take the file's image");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  if (H5Fget_file_image(file_.get(), bytes.data(), bytes.size()) != size)
    throw Error(path_ + ": cannot take the file's image");
  return bytes;
}

bool H5File::has(const std::string& object) const {
  // H5Lexists must be asked for every component of the path: it fails on a missing parent.
  std::size_t position = 0;
  while (position != std::string::npos) {
    position = object.find('/', position + 1);
    const std::string prefix = object.substr(0, position);
    if (prefix.empty() || prefix == "/") continue;
    if (H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    // Soft and external links are never written by us; an external one would make HDF5 open
    // whatever other file a crafted input names, so neither is followed.
    H5L_info_t info{};
    if (H5Lget_info(file_.get(), prefix.c_str(), &info, H5P_DEFAULT) < 0 ||
        info.type != H5L_TYPE_HARD)
      throw Error(where(prefix) + ": a soft or external link (not followed)");
  }
  return true;
}

H5Handle H5File::open_object(const std::string& object) const {
  if (!has(object)) throw Error(where(object) + ": missing");
  H5Handle handle(H5Oopen(file_.get(), object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!handle.valid()) throw Error(where(object) + ": cannot open");
  return handle;
}

H5Handle H5File::open_dataset(const std::string& dataset) const {
  if (!has(dataset)) throw Error(where(dataset) + ": missing");
  unsigned intent = 0;  // only files we read can be crafted; ours being written are not probed
  if (H5Fget_intent(file_.get(), &intent) >= 0 && intent == H5F_ACC_RDONLY)
    probe_in_child(path_, dataset);
  H5Handle handle(H5Dopen2(file_.get(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!handle.valid()) throw Error(where(dataset) + ": not a dataset");
  return handle;
}

std::vector<std::uint64_t> H5File::dims(const std::string& dataset) const {
  const H5Handle data = open_dataset(dataset);
  const H5Handle space(H5Dget_space(data.get()), H5Sclose);
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank < 0) throw Error(where(dataset) + ": cannot read its shape");
  std::vector<hsize_t> h5_dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), h5_dims.data(), nullptr);
  return {h5_dims.begin(), h5_dims.end()};
}

void H5File::check_storage_of(const std::string& dataset) const {
  const H5Handle data = open_dataset(dataset);
  check_storage(file_.get(), data.get(), where(dataset));
}

bool H5File::stores_uint8(const std::string& dataset) const {
  const H5Handle data = open_dataset(dataset);
  const H5Handle type(H5Dget_type(data.get()), H5Tclose);
  return type.valid() && H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 1 &&
         H5Tget_sign(type.get()) == H5T_SGN_NONE;
}

std::string H5File::type_text(const std::string& dataset) const {
  const H5Handle data = open_dataset(dataset);
  const H5Handle type(H5Dget_type(data.get()), H5Tclose);
  if (!type.valid()) return "an unreadable type";
  const H5T_class_t kind = H5Tget_class(type.get());
  const std::string name = kind == H5T_FLOAT     ? "float"
                           : kind == H5T_INTEGER ? (H5Tget_sign(type.get()) == H5T_SGN_NONE
                                                        ? "unsigned integer"
                                                        : "signed integer")
                                                 : "a non-numeric type";
  return name + " of " + std::to_string(H5Tget_size(type.get())) + " bytes";
}

bool H5File::has_checksum(const std::string& dataset) const {
  const H5Handle data = open_dataset(dataset);
  const H5Handle create(H5Dget_create_plist(data.get()), H5Pclose);
  if (!create.valid()) return false;
  const int filters = H5Pget_nfilters(create.get());
  for (int i = 0; i < filters; ++i) {
    unsigned flags = 0, config = 0;
    std::size_t values = 0;
    if (H5Pget_filter2(create.get(), static_cast<unsigned>(i), &flags, &values, nullptr, 0,
                       nullptr, &config) == H5Z_FILTER_FLETCHER32)
      return true;
  }
  return false;
}

void H5File::create_group(const std::string& group) {
  std::size_t position = 0;
  do {
    position = group.find('/', position + 1);
    const std::string prefix = group.substr(0, position);
    if (prefix.empty() || H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) > 0) continue;
    const H5Handle created(
        H5Gcreate2(file_.get(), prefix.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!created.valid()) throw Error(where(prefix) + ": cannot create group");
  } while (position != std::string::npos);
}

std::uint64_t H5File::child_count(const std::string& group) const {
  if (!has(group)) throw Error(where(group) + ": missing");
  const H5Handle opened(H5Gopen2(file_.get(), group.c_str(), H5P_DEFAULT), H5Gclose);
  H5G_info_t info{};
  if (!opened.valid() || H5Gget_info(opened.get(), &info) < 0)
    throw Error(where(group) + ": not a group");
  return info.nlinks;
}

template <typename T>
void H5File::write(const std::string& dataset, const std::vector<std::uint64_t>& dims,
                   const T* data, const H5Storage& storage) {
  const auto last_slash = dataset.find_last_of('/');
  if (last_slash != 0 && last_slash != std::string::npos)
    create_group(dataset.substr(0, last_slash));
  const H5Handle space = space_of(dims);
  H5Handle properties(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  const std::uint64_t elements = product(dims, where(dataset));
  if (storage.chunk_rows > 0 && !dims.empty() && elements > 0) {
    std::vector<hsize_t> chunk(dims.begin(), dims.end());
    chunk[0] = std::min<hsize_t>(storage.chunk_rows, dims[0]);
    DAE_CHECK_H5(H5Pset_chunk(properties.get(), static_cast<int>(chunk.size()), chunk.data()));
    if (storage.checksum) DAE_CHECK_H5(H5Pset_fletcher32(properties.get()));
    if (storage.deflate_level > 0) {
      DAE_CHECK_H5(H5Pset_shuffle(properties.get()));
      DAE_CHECK_H5(H5Pset_deflate(properties.get(), static_cast<unsigned>(storage.deflate_level)));
    }
  }
  const H5Handle created(H5Dcreate2(file_.get(), dataset.c_str(), h5_type<T>(), space.get(),
                                    H5P_DEFAULT, properties.get(), H5P_DEFAULT),
                         H5Dclose);
  if (!created.valid()) throw Error(where(dataset) + ": cannot create dataset");
  if (elements > 0 &&
      H5Dwrite(created.get(), h5_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw Error(where(dataset) + ": write failed (disk full?)");
}

template <typename T>
std::vector<T> H5File::read(const std::string& dataset) const {
  const H5Handle data = open_dataset(dataset);
  check_dataset_type(data.get(), std::is_floating_point_v<T>, where(dataset));
  check_storage(file_.get(), data.get(), where(dataset));
  std::vector<T> values;
  try {
    values.resize(static_cast<std::size_t>(product(dims(dataset), where(dataset))));
  } catch (const std::bad_alloc&) {
    throw Error(where(dataset) + ": too large to read into memory");
  } catch (const std::length_error&) {
    throw Error(where(dataset) + ": too large to read into memory");
  }
  if (!values.empty() &&
      H5Dread(data.get(), h5_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0)
    throw Error(where(dataset) + ": read failed (corrupt data or checksum mismatch)");
  return values;
}

template <typename T>
void H5File::read_rows(const std::string& dataset, std::uint64_t first, std::uint64_t count,
                       T* out) const {
  const std::vector<std::uint64_t> shape = dims(dataset);
  if (shape.empty() || first + count > shape[0])
    throw Error(where(dataset) + ": rows [" + std::to_string(first) + ", " +
                std::to_string(first + count) + ") out of range");
  if (count == 0) return;
  const H5Handle data = open_dataset(dataset);
  check_dataset_type(data.get(), std::is_floating_point_v<T>, where(dataset));
  check_storage(file_.get(), data.get(), where(dataset));
  const H5Handle file_space(H5Dget_space(data.get()), H5Sclose);
  std::vector<hsize_t> start(shape.size(), 0), extent(shape.begin(), shape.end());
  start[0] = first;
  extent[0] = count;
  DAE_CHECK_H5(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr,
                                   extent.data(), nullptr));
  const H5Handle memory_space(
      H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), H5Sclose);
  if (H5Dread(data.get(), h5_type<T>(), memory_space.get(), file_space.get(), H5P_DEFAULT, out) <
      0)
    throw Error(where(dataset) + ": read of rows [" + std::to_string(first) + ", " +
                std::to_string(first + count) + ") failed (corrupt or truncated file)");
}

void H5File::write_attribute(const std::string& object, const std::string& name,
                             const std::string& value) {
  const H5Handle target = open_object(object);
  const H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  DAE_CHECK_H5(H5Tset_size(type.get(), std::max<std::size_t>(value.size(), 1)));
  const H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const H5Handle attribute(
      H5Acreate2(target.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose);
  if (!attribute.valid() || H5Awrite(attribute.get(), type.get(), value.c_str()) < 0)
    throw Error(where(object) + ": cannot write attribute " + name);
}

template <typename T>
void H5File::write_scalar_attribute(const std::string& object, const std::string& name, T value) {
  const H5Handle target = open_object(object);
  const H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const H5Handle attribute(
      H5Acreate2(target.get(), name.c_str(), h5_type<T>(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose);
  if (!attribute.valid() || H5Awrite(attribute.get(), h5_type<T>(), &value) < 0)
    throw Error(where(object) + ": cannot write attribute " + name);
}

void H5File::write_attribute(const std::string& object, const std::string& name,
                             std::int64_t value) {
  write_scalar_attribute(object, name, value);
}

void H5File::write_attribute(const std::string& object, const std::string& name, double value) {
  write_scalar_attribute(object, name, value);
}

H5Handle H5File::open_single_attribute(const std::string& object, const std::string& name) const {
  const H5Handle target = open_object(object);
  if (H5Aexists(target.get(), name.c_str()) <= 0)
    throw Error(where(object) + ": attribute " + name + " missing");
  H5Handle attribute(H5Aopen(target.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  // H5Aread fills the whole dataspace: an array would overrun a single value's buffer.
  const H5Handle space(H5Aget_space(attribute.get()), H5Sclose);
  if (!space.valid() || H5Sget_simple_extent_npoints(space.get()) != 1)
    throw Error(where(object) + ": attribute " + name + " is not a single value");
  return attribute;
}

std::string H5File::read_string_attribute(const std::string& object,
                                          const std::string& name) const {
  const H5Handle attribute = open_single_attribute(object, name);
  const H5Handle type(H5Aget_type(attribute.get()), H5Tclose);
  if (!type.valid() || H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()))
    throw Error(where(object) + ": attribute " + name + " is not a fixed-length string");
  std::string value(H5Tget_size(type.get()), '\0');
  const H5Handle memory_type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(memory_type.get(), value.size());
  if (H5Aread(attribute.get(), memory_type.get(), value.data()) < 0)
    throw Error(where(object) + ": cannot read attribute " + name);
  value.resize(value.find('\0') == std::string::npos ? value.size() : value.find('\0'));
  return value;
}

template <typename T>
T H5File::read_scalar_attribute(const std::string& object, const std::string& name) const {
  const H5Handle attribute = open_single_attribute(object, name);
  const H5Handle type(H5Aget_type(attribute.get()), H5Tclose);
  check_element_type(type.get(), std::is_floating_point_v<T>, where(object) + ": attribute " + name);
  T value{};
  if (H5Aread(attribute.get(), h5_type<T>(), &value) < 0)
    throw Error(where(object) + ": cannot read attribute " + name);
  return value;
}

std::int64_t H5File::read_int_attribute(const std::string& object, const std::string& name) const {
  return read_scalar_attribute<std::int64_t>(object, name);
}

void H5File::close() {
  if (file_.close() < 0) throw Error(path_ + ": closing failed (disk full?)");
}

void H5File::flush() {
  if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) throw Error(path_ + ": flush failed");
}

#define DAE_H5_INSTANTIATE(T)                                                                 \
  template void H5File::write<T>(const std::string&, const std::vector<std::uint64_t>&,      \
                                 const T*, const H5Storage&);                                  \
  template std::vector<T> H5File::read<T>(const std::string&) const;                           \
  template void H5File::read_rows<T>(const std::string&, std::uint64_t, std::uint64_t, T*) const;
DAE_H5_INSTANTIATE(std::uint8_t)
DAE_H5_INSTANTIATE(float)
DAE_H5_INSTANTIATE(double)
DAE_H5_INSTANTIATE(std::int64_t)
#undef DAE_H5_INSTANTIATE

}  // namespace dae
