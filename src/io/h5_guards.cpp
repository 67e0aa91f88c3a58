#include "dae/io/h5_guards.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <set>
#include <tuple>

#include "dae/core/error.hpp"
#include "dae/io/h5.hpp"

namespace dae {

namespace {

// More chunks than this in one dataset only a crafted file has (ours: 60 000 images in 60, so
// 8 M images fit); HDF5 1.10 finds a chunk's index entry by walking from the first, so checking
// n entries costs n^2 / 2 steps.
constexpr std::uint64_t kMaxChunks = 1 << 13;
}  // namespace

// Elements of an array of shape `dims`; a shape whose count overflows 64 bits (only a crafted
// file has one) would otherwise wrap to a small number and size a buffer HDF5 then overruns.
std::uint64_t product(const std::vector<std::uint64_t>& dims, const std::string& what) {
  std::uint64_t count = 1;
  for (const std::uint64_t dim : dims)
    if (__builtin_mul_overflow(count, dim, &count))
      throw Error(what + ": shape too large (more than 2^64 elements)");
  return count;
}

// The stored element type must be of the expected kind (integer or floating point) and of a size HDF5
// converts without surprises. HDF5 1.10 opens a crafted type with a 16 MB "integer" and then
// overruns its own buffer converting it (found by fuzz_data_file); we refuse it first.
void check_element_type(hid_t type, bool floating, const std::string& what) {
  const H5T_class_t kind = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
  const std::size_t size = type >= 0 ? H5Tget_size(type) : 0;
  const bool ok = floating ? kind == H5T_FLOAT && (size == 4 || size == 8)
                           : kind == H5T_INTEGER && (size == 1 || size == 2 || size == 4 || size == 8);
  if (!ok)
    throw Error(what + ": stored as " + (kind == H5T_FLOAT ? "floating point" : kind == H5T_INTEGER
                                                                  ? "integer" : "another type") +
                " of " + std::to_string(size) + " bytes, expected " +
                (floating ? "floating point" : "integer") + " numbers");
}

void check_dataset_type(hid_t dataset, bool floating, const std::string& what) {
  const H5Handle type(H5Dget_type(dataset), H5Tclose);
  check_element_type(type.get(), floating, what);
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

namespace {

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

}  // namespace

// HDF5 1.10 can crash on a crafted file while merely opening an object (a chunk dimension of 0
// divides by zero inside H5Dopen: found by fuzz_checkpoint), before any check of ours can run.
// So a forked child first opens the file and every object, attribute and chunk-index entry in
// it, and again each dataset by the name we are about to open it with (a walk over the links
// can miss an object that a lookup by name reaches: found by fuzz_checkpoint too); if the child
// dies, the file is refused with one line and this process never touches it. The child makes
// HDF5 calls only and leaves with _exit, so MPI and LibTorch state are not touched.
// `dataset` empty: the whole walk; else that dataset only.
void probe_in_child(const std::string& path, const std::string& dataset) {
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
  // Polled from 0.1 ms up to every 10 ms: a probe takes about a millisecond, and the first
  // checks must not make each file open cost a full poll interval.
  long waited_us = 0;
  for (long interval_us = 100;; interval_us = std::min(2 * interval_us, 10000L)) {
    const pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) break;
    if (done < 0 && errno != EINTR) return;
    if (waited_us >= kProbeSeconds * 1000000L) {
      ::kill(child, SIGKILL);
      while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      throw Error(path + ": the HDF5 library did not finish opening it within " +
                  std::to_string(kProbeSeconds) + " s (corrupt or crafted file)");
    }
    ::usleep(static_cast<useconds_t>(interval_us));
    waited_us += interval_us;
  }
  if (WIFSIGNALED(status))
    throw Error(path + ": corrupt file (the HDF5 library crashed opening it, signal " +
                std::to_string(WTERMSIG(status)) + ")");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)  // e.g. a sanitizer's report
    throw Error(path + ": corrupt file (the HDF5 library failed opening it)");
  probed.insert(version);
}

}  // namespace dae
