// defines: the checks that stand between HDF5 and a hostile file (dae::probe_in_child,
//          dae::check_storage, dae::check_filters, dae::check_element_type,
//          dae::check_dataset_type, dae::product): H5File (h5.hpp) runs them before it reads
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dae {

// Opens `path` and every object in it (or only `dataset`) in a forked child first; throws
// dae::Error with one line if HDF5 crashes, fails or spins there (60 s deadline). Once per
// version of the file (device, inode, size, mtime) and dataset.
void probe_in_child(const std::string& path, const std::string& dataset = "");
// The dataset's storage holds what its shape promises, from this file only (chunk index inside
// the dataset and the file, every chunk present, at most 8192 chunks, no virtual dataset).
void check_storage(hid_t file, hid_t dataset, const std::string& what);
// Every filter the dataset's creation property list names is in this HDF5 library.
void check_filters(hid_t create, const std::string& what);
// The element type is an integer (or, with `floating`, floating point) of a sane size.
void check_element_type(hid_t type, bool floating, const std::string& what);
void check_dataset_type(hid_t dataset, bool floating, const std::string& what);
// Elements of an array of shape `dims`, refusing a count that overflows 64 bits.
std::uint64_t product(const std::vector<std::uint64_t>& dims, const std::string& what);

}  // namespace dae
