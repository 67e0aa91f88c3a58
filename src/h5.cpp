#include "dae/h5.hpp"

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

#include "dae/error.hpp"
#include "dae/files.hpp"

namespace dae {

namespace {

// More chunks than this in one dataset only a crafted file has (ours: 60 000 images in 60, so
// 8 M images fit); HDF5 1.10 finds a chunk's index entry by walking from the first, so checking
// n entries costs n^2 / 2 steps.
constexpr std::uint64_t kMaxChunks = 1 << 13;
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

// Elements of an array of shape `dims`; a shape whose count overflows 64 bits (only a crafted
// file has one) would otherwise wrap to a small number and size a buffer HDF5 then overruns.
std::uint64_t product(const std::vector<std::uint64_t>& dims, const std::string& what) {
  std::uint64_t count = 1;
  for (const std::uint64_t dim : dims)
    if (__builtin_mul_overflow(count, dim, &count))
      throw Error(what + ": shape too large (more than 2^64 elements)");
  return count;
}

H5Handle space_of(const std::vector<std::uint64_t>& dims) {
  std::vector<hsize_t> h5_dims(dims.begin(), dims.end());
  return H5Handle(H5Screate_simple(static_cast<int>(h5_dims.size()), h5_dims.data(), nullptr),
                  H5Sclose);
}

// The stored element type must be of T's kind (integer or floating point) and of a size HDF5
// converts without surprises. HDF5 1.10 opens a crafted type with a 16 MB "integer" and then
// overruns its own buffer converting it (found by fuzz_data_file); we refuse it first.
template <typename T>
void check_element_type(hid_t type, const std::string& what) {
  const H5T_class_t kind = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
  const std::size_t size = type >= 0 ? H5Tget_size(type) : 0;
  const bool floating = std::is_floating_point_v<T>;
  const bool ok = floating ? kind == H5T_FLOAT && (size == 4 || size == 8)
                           : kind == H5T_INTEGER && (size == 1 || size == 2 || size == 4 || size == 8);
  if (!ok)
    throw Error(what + ": stored as " + (kind == H5T_FLOAT ? "floating point" : kind == H5T_INTEGER
                                                                  ? "integer" : "another type") +
                " of " + std::to_string(size) + " bytes, expected " +
                (floating ? "floating point" : "integer") + " numbers");
}

template <typename T>
void check_dataset_type(hid_t dataset, const std::string& what) {
  const H5Handle type(H5Dget_type(dataset), H5Tclose);
  check_element_type<T>(type.get(), what);
}

// Every filter of the dataset must be one this HDF5 library has: a missing one would otherwise
// be reported as a corrupt file at the first read.
void check_filters(hid_t create, const std::string& what) {
  const int filters = H5Pget_nfilters(create);
  for (int i = 0; i < filters; ++i) {
    unsigned flags = 0, config = 0;
    std::size_t values = 0;
    char name[64] = {};
    const H5Z_filter_t filter =
        H5Pget_filter2(create, static_cast<unsigned>(i), &flags, &values, nullptr, sizeof name,
                       name, &config);
    if (filter < 0 || H5Zfilter_avail(filter) <= 0)
      throw Error(what + ": stored with HDF5 filter " + std::to_string(filter) + " (" +
                  (name[0] ? name : "unnamed") + "), which this HDF5 library does not have");
  }
}

// The storage must hold what the shape promises, from this file only. HDF5 1.10 trusts the
// chunk shape and the chunk index it reads from the file, so before a read: the shape must fit
// the dataset, every index entry must lie inside the dataset, on a chunk boundary and within
// the file, and every chunk must be there (a dataset declaring 10^8 rows it never wrote reads
// as fill values for minutes). A virtual dataset would read other files: refused.
void check_storage(hid_t file, hid_t dataset, const std::string& what) {
  const H5Handle create(H5Dget_create_plist(dataset), H5Pclose);
  if (!create.valid()) throw Error(what + ": cannot read its storage layout");
  check_filters(create.get(), what);
  const H5D_layout_t layout = H5Pget_layout(create.get());
  if (layout == H5D_VIRTUAL)
    throw Error(what + ": a virtual dataset (it reads other files, which are not followed)");
  const H5Handle space(H5Dget_space(dataset), H5Sclose);
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank < 0) throw Error(what + ": cannot read its shape");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank)), max_dims(dims.size()),
      chunk(dims.size()), offset(dims.size());
  H5Sget_simple_extent_dims(space.get(), dims.data(), max_dims.data());
  const std::uint64_t elements = product({dims.begin(), dims.end()}, what);
  if (layout == H5D_CONTIGUOUS) {
    const H5Handle type(H5Dget_type(dataset), H5Tclose);
    const std::uint64_t element_bytes = type.valid() ? H5Tget_size(type.get()) : 0;
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(elements, element_bytes, &bytes) ||
        H5Dget_storage_size(dataset) < bytes)
      throw Error(what + ": stores fewer bytes than its shape needs (rows never written)");
    return;
  }
  if (layout != H5D_CHUNKED) return;  // compact: the data is inside the object header
  if (H5Pget_chunk(create.get(), rank, chunk.data()) != rank)
    throw Error(what + ": corrupt chunk layout");
  // HDF5 never creates a chunk larger than a fixed dimension, and 1.10 overruns its buffers
  // reading one (found by fuzz_checkpoint).
  std::uint64_t needed = 1;
  for (std::size_t d = 0; d < dims.size(); ++d) {
    if (chunk[d] == 0 || (max_dims[d] != H5S_UNLIMITED && chunk[d] > max_dims[d]))
      throw Error(what + ": corrupt chunk layout (chunk larger than the dataset)");
    const std::uint64_t along = (dims[d] + chunk[d] - 1) / chunk[d];
    if (__builtin_mul_overflow(needed, along, &needed) || needed > kMaxChunks)
      throw Error(what + ": split into more than " + std::to_string(kMaxChunks) +
                  " chunks (chunks this small make reading it take minutes)");
  }
  hsize_t chunks = 0, file_size = 0;
  if (H5Dget_num_chunks(dataset, space.get(), &chunks) < 0 || H5Fget_filesize(file, &file_size) < 0)
    throw Error(what + ": corrupt chunk index");
  if (elements > 0 && chunks < needed)
    throw Error(what + ": holds " + std::to_string(chunks) + " of its " + std::to_string(needed) +
                " chunks (rows declared but never written)");
  for (hsize_t i = 0; i < chunks; ++i) {
    unsigned filter_mask = 0;
    haddr_t address = 0;
    hsize_t size = 0;
    if (H5Dget_chunk_info(dataset, space.get(), i, offset.data(), &filter_mask, &address, &size) < 0)
      throw Error(what + ": corrupt chunk index");
    bool inside = address != HADDR_UNDEF && address <= file_size && size <= file_size - address;
    for (std::size_t d = 0; d < dims.size(); ++d)
      inside = inside && offset[d] < dims[d] && offset[d] % chunk[d] == 0;
    if (!inside) throw Error(what + ": corrupt chunk index (chunk " + std::to_string(i) + ")");
  }
}

// Opens one object as our reads will: its attributes, and for a dataset its type, shape,
// layout and chunk index. Used in the child of probe_in_child(): plain HDF5 calls only.
herr_t open_attribute(hid_t object, const char* name, const H5A_info_t*, void*) {
  const H5Handle attribute(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  const H5Handle type(H5Aget_type(attribute.get()), H5Tclose);
  const H5Handle space(H5Aget_space(attribute.get()), H5Sclose);
  return 0;
}

herr_t open_object(hid_t group, const char* name, const H5L_info_t* link, void*) {
  if (link->type != H5L_TYPE_HARD) return 0;
  const H5Handle object(H5Oopen(group, name, H5P_DEFAULT), H5Oclose);
  if (!object.valid()) return 0;
  H5Aiterate2(object.get(), H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, open_attribute, nullptr);
  if (H5Iget_type(object.get()) != H5I_DATASET) return 0;
  const H5Handle type(H5Dget_type(object.get()), H5Tclose);
  const H5Handle space(H5Dget_space(object.get()), H5Sclose);
  const H5Handle create(H5Dget_create_plist(object.get()), H5Pclose);
  hsize_t chunks = 0;
  if (space.valid() && create.valid() && H5Pget_layout(create.get()) == H5D_CHUNKED &&
      H5Dget_num_chunks(object.get(), space.get(), &chunks) >= 0 && chunks <= kMaxChunks) {
    std::vector<hsize_t> offset(32);
    for (hsize_t i = 0; i < chunks; ++i) {
      unsigned filter_mask = 0;
      haddr_t address = 0;
      hsize_t size = 0;
      H5Dget_chunk_info(object.get(), space.get(), i, offset.data(), &filter_mask, &address,
                        &size);
    }
  }
  return 0;
}

// HDF5 1.10 can crash on a crafted file while merely opening an object (a chunk dimension of 0
// divides by zero inside H5Dopen: found by fuzz_checkpoint), before any check of ours can run.
// So a forked child first opens the file and every object, attribute and chunk-index entry in
// it, and again each dataset by the name we are about to open it with (a walk over the links
// can miss an object that a lookup by name reaches: found by fuzz_checkpoint too); if the child
// dies, the file is refused with one line and this process never touches it. The child makes
// HDF5 calls only and leaves with _exit, so MPI and LibTorch state are not touched.
// `dataset` empty: the whole walk; else that dataset only.
void probe_in_child(const std::string& path, const std::string& dataset = "") {
  // Each probe runs once per file version: a rank opens its data file for every evaluation block.
  // (Process-wide state, like HDF5's own; only ever touched from the thread that calls HDF5.)
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return;  // H5Fopen reports it
  using Version = std::tuple<dev_t, ino_t, off_t, std::int64_t, std::int64_t, std::string>;
  static std::set<Version> probed;
  const Version version{info.st_dev, info.st_ino, info.st_size, info.st_mtim.tv_sec,
                        info.st_mtim.tv_nsec, dataset};
  if (probed.count(version) != 0) return;

  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t child = ::fork();
  if (child < 0) return;  // no probe possible: the ordinary checks still run
  if (child == 0) {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file >= 0 && dataset.empty()) {
      H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, open_attribute, nullptr);
      H5Lvisit(file, H5_INDEX_NAME, H5_ITER_NATIVE, open_object, nullptr);
    } else if (file >= 0) {
      H5L_info_t link{};
      link.type = H5L_TYPE_HARD;
      open_object(file, dataset.c_str(), &link, nullptr);
    }
    if (file >= 0) H5Fclose(file);
    ::_exit(0);
  }
  // A crafted file can also make HDF5 spin: the child gets a deadline.
  constexpr int kProbeSeconds = 60;
  int status = 0;
  for (int waited_ms = 0;; waited_ms += 10) {
    const pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) break;
    if (done < 0 && errno != EINTR) return;
    if (waited_ms >= kProbeSeconds * 1000) {
      ::kill(child, SIGKILL);
      while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      throw Error(path + ": the HDF5 library did not finish opening it within " +
                  std::to_string(kProbeSeconds) + " s (corrupt or crafted file)");
    }
    ::usleep(10000);
  }
  if (WIFSIGNALED(status))
    throw Error(path + ": corrupt file (the HDF5 library crashed opening it, signal " +
                std::to_string(WTERMSIG(status)) + ")");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)  // e.g. a sanitizer's report
    throw Error(path + ": corrupt file (the HDF5 library failed opening it)");
  probed.insert(version);
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
  check_dataset_type<T>(data.get(), where(dataset));
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
  check_dataset_type<T>(data.get(), where(dataset));
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
  check_element_type<T>(type.get(), where(object) + ": attribute " + name);
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
