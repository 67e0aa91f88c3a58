// defines: dae::write_file_atomically, dae::json_number
#pragma once

#include <string>

namespace dae {

// Writes `text` to `path.tmp.<pid>`, fsyncs it, then renames it over `path`: readers see the old
// file or the new one, never a partial one. Throws dae::Error naming the path.
void write_file_atomically(const std::string& path, const std::string& text);

// A JSON number with enough digits to round-trip a double.
std::string json_number(double value);

}  // namespace dae
