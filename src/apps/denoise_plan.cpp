#include "denoise_plan.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dae/core/error.hpp"
#include "dae/core/files.hpp"
#include "dae/io/image_file.hpp"

namespace dae {

namespace {

namespace fs = std::filesystem;

void require(bool condition, const std::string& message) {
  if (!condition) throw Error(message);
}

bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code error;
  return fs::weakly_canonical(a, error) == fs::weakly_canonical(b, error);
}

bool is_inside(const fs::path& path, const fs::path& folder) {
  std::error_code error;
  const fs::path inner = fs::weakly_canonical(path, error);
  const fs::path outer = fs::weakly_canonical(folder, error);
  return std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end()).first ==
         outer.end();
}

}  // namespace

InputKind input_kind(const std::string& path) {
  require_regular_file(path, std::uint64_t{1} << 40, "input");
  unsigned char head[8] = {};
  std::ifstream file(path, std::ios::binary);
  file.read(reinterpret_cast<char*>(head), sizeof head);
  const auto got = file.gcount();
  const unsigned char hdf5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (got >= 8 && std::equal(head, head + 8, hdf5_signature)) return InputKind::kHdf5;
  // IDX: 00 00 08 (unsigned bytes), or gzip's 1f 8b around it.
  if (got >= 3 && ((head[0] == 0x1f && head[1] == 0x8b) ||
                   (head[0] == 0 && head[1] == 0 && head[2] == 0x08)))
    return InputKind::kIdx;
  image_format_of(path);  // throws "neither a PNG nor a PGM image" for anything else
  return InputKind::kImage;
}

std::string DenoisePlan::text() const {
  std::string text = std::to_string(static_cast<int>(kind)) + "\n";
  for (std::size_t i = 0; i < inputs.size(); ++i) text += inputs[i] + "\n" + outputs[i] + "\n";
  return text;
}

DenoisePlan DenoisePlan::from_text(const std::string& text) {
  DenoisePlan plan;
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  plan.kind = static_cast<InputKind>(std::stoi(line));
  for (std::string input, output; std::getline(lines, input) && std::getline(lines, output);) {
    plan.inputs.push_back(input);
    plan.outputs.push_back(output);
  }
  return plan;
}

DenoisePlan make_denoise_plan(const std::vector<std::string>& inputs, const std::string& out,
                              const std::string& dataset, bool overwrite) {
  DenoisePlan plan;
  std::vector<InputKind> kinds;
  std::vector<fs::path> folders;
  for (const std::string& input : inputs) {
    std::error_code error;
    if (fs::is_directory(input, error)) {
      folders.push_back(input);
      for (const std::string& relative : list_image_files(input)) {
        plan.inputs.push_back((fs::path(input) / relative).string());
        plan.outputs.push_back((fs::path(out) / relative).string());
        kinds.push_back(InputKind::kImage);
      }
      continue;
    }
    if (!fs::exists(input, error)) throw Error(input + ": no such file or folder");
    kinds.push_back(input_kind(input));
    plan.inputs.push_back(input);
    plan.outputs.push_back(kinds.back() == InputKind::kImage
                               ? (fs::path(out) / fs::path(input).filename()).string()
                               : out);
  }
  require(!plan.inputs.empty(), "no PNG or PGM image in " + inputs.front());
  plan.kind = kinds.front();
  if (plan.kind != InputKind::kImage) {
    require(plan.inputs.size() == 1, plan.inputs.front() + ": an IDX or HDF5 input is denoised "
                                     "alone (one array file per call)");
    require(plan.kind != InputKind::kHdf5 || !dataset.empty(),
            plan.inputs.front() + ": an HDF5 file; name its images with --dataset");
  } else {
    require(std::all_of(kinds.begin(), kinds.end(),
                        [](InputKind kind) { return kind == InputKind::kImage; }),
            "images and IDX/HDF5 arrays cannot be mixed in one call");
    require(dataset.empty(), "--dataset: only for an HDF5 input");
    std::error_code error;
    require(!fs::exists(out, error) || fs::is_directory(out, error),
            "--out " + out + ": exists and is not a folder (image outputs go into one)");
  }
  // Never an input overwritten, never a folder that would read its own outputs next time.
  for (const fs::path& folder : folders)
    require(!is_inside(out, folder),
            "--out " + out + ": is inside the input folder " + folder.string());
  std::vector<std::string> sorted = plan.outputs;
  std::sort(sorted.begin(), sorted.end());
  const auto twice = std::adjacent_find(sorted.begin(), sorted.end());
  require(twice == sorted.end(), "--out: two inputs would both be written to " +
                                     (twice == sorted.end() ? std::string() : *twice));
  for (const std::string& output : plan.outputs) {
    for (const std::string& input : plan.inputs)
      require(!same_file(output, input), "--out: " + output + " is an input; choose another output");
    std::error_code error;
    require(overwrite || !fs::exists(output, error),
            output + ": exists; pass --overwrite to replace it");
  }
  return plan;
}

}  // namespace dae
