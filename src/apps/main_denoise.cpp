// dae_denoise: a trained network applied to anyone's grayscale images — PNG and PGM files, folders
// of them, IDX files and HDF5 datasets — on the CPU's fused kernels or a GPU, split over MPI ranks.
// Reads like the job it runs: parse -> plan inputs and outputs -> load the model -> denoise this
// rank's share -> gather -> report.
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <thread>

#include "dae/core/config.hpp"
#include "dae/core/error.hpp"
#include "dae/core/files.hpp"
#include "dae/data/noise.hpp"
#include "dae/dist/mpi.hpp"
#include "dae/dist/mpi_communicator.hpp"
#include "dae/eval/quality.hpp"
#include "dae/io/h5.hpp"
#include "dae/io/idx.hpp"
#include "dae/io/image_file.hpp"
#include "dae/model/cpu_kernels.hpp"
#include "dae/model/inference.hpp"
#include "dae/train/trained_model.hpp"
#include "denoise_plan.hpp"

namespace {

namespace fs = std::filesystem;
namespace po = boost::program_options;

constexpr const char* kProgram = "dae_denoise";
// The noise this program adds (--add-noise) has its own stream, apart from training's and the
// evaluation's (data/noise.hpp); each image is its own owner, so its noise does not depend on
// which rank denoises it.
constexpr std::uint64_t kDenoiseNoiseStream = 6;
constexpr long kMaxBatch = 1L << 20;

struct Options {
  std::string checkpoint, run_dir;
  std::vector<std::string> inputs;
  std::string out;
  std::string dataset;  // HDF5 input: the [N, H, W] dataset
  bool overwrite = false;
  dae::ColourPolicy colour = dae::ColourPolicy::kRefuse;
  double add_noise = 0;
  dae::NoiseType noise_type = dae::NoiseType::kGaussian;
  long seed = 1;
  bool reference = false;
  std::string summary;  // --reference's JSON ("" : beside the output)
  dae::DeviceKind device = dae::DeviceKind::kAuto;
  dae::KernelChoice kernels = dae::KernelChoice::kAuto;
  long threads = 0;
  long batch = 256;
  long tile = 512;
};

struct HelpRequested {
  std::string text;
};

// An enum option read through the project's own names (config.hpp's EnumNames).
template <typename E>
void parse_choice(const po::variables_map& values, const char* name, E& field) {
  if (values.count(name)) field = dae::parse_enum<E>(name, values[name].as<std::string>());
}

void require(bool condition, const std::string& message) {
  if (!condition) throw dae::Error(message);
}

Options parse_options(int argc, const char* const* argv) {
  Options options;
  po::options_description model("Model (one of)");
  model.add_options()
      ("checkpoint", po::value(&options.checkpoint), "a checkpoint file written by dae_dist")
      ("run-dir", po::value(&options.run_dir), "a dae_dist run directory: its newest checkpoint");
  po::options_description io("Inputs and outputs");
  io.add_options()
      ("out", po::value(&options.out),
       "for image inputs a folder (one image per input, relative paths kept); for an IDX or "
       "HDF5 input the output file")
      ("dataset", po::value(&options.dataset),
       "HDF5 input: the dataset of [N, H, W] images (uint8, or float in [0, 1])")
      ("overwrite", po::bool_switch(&options.overwrite), "replace outputs that exist")
      ("colour", po::value<std::string>()->default_value("refuse"),
       "a colour PNG: refuse | luminance (Rec. 601 luma)");
  po::options_description check("Checking on your own clean images");
  check.add_options()
      ("add-noise", po::value(&options.add_noise)->default_value(0),
       "corrupt the inputs first at this level, with the training noise code (0: none)")
      ("noise-type", po::value<std::string>()->default_value("gaussian"),
       "gaussian | salt-pepper | mask")
      ("seed", po::value(&options.seed)->default_value(1), "seed of the added noise")
      ("reference", po::bool_switch(&options.reference),
       "with --add-noise: print MSE, PSNR and SSIM of the noisy input and of the output against "
       "the clean images, per file and overall, and write them as JSON")
      ("summary", po::value(&options.summary),
       "--reference's JSON file (default: OUT/summary.json, or OUT.summary.json for a file)");
  po::options_description run("Running");
  run.add_options()
      ("device", po::value<std::string>()->default_value("auto"),
       "auto | cpu | cuda (auto: the node-local rank's GPU when there is one)")
      ("kernels", po::value<std::string>()->default_value("auto"),
       "on the CPU: auto | fused | libtorch (auto: fused where the CPU has AVX2 or AVX-512)")
      ("threads", po::value(&options.threads)->default_value(0),
       "threads per rank; 0 = cores / ranks on the node")
      ("batch", po::value(&options.batch)->default_value(256), "images or tiles per forward pass")
      ("tile", po::value(&options.tile)->default_value(512),
       "images larger than this (either side, after padding to a multiple of 4) go through "
       "overlapping tiles of at most this side: a multiple of 4, at least 64; 0 = never tile")
      ("help,h", "this help");
  po::options_description hidden;
  hidden.add_options()("input", po::value(&options.inputs)->composing(), "inputs");
  po::options_description all;
  all.add(model).add(io).add(check).add(run).add(hidden);
  po::positional_options_description positional;
  positional.add("input", -1);

  po::variables_map values;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(),
              values);
    if (values.count("help")) {
      std::ostringstream text;
      text << "usage: dae_denoise --checkpoint CKPT | --run-dir DIR  INPUT... --out OUT\n"
           << "  INPUT: PNG or PGM files (8 or 16 bit), folders of them (recursively), an IDX\n"
           << "  file (raw or .gz) or an HDF5 file with --dataset. Outputs mirror the inputs.\n"
           << "examples:\n"
           << "  dae_denoise --run-dir runs/mnist scans/ --out denoised/\n"
           << "  dae_denoise --checkpoint ckpt.h5 --dataset /test/images data/mnist.h5 "
              "--out test_denoised.h5 --add-noise 0.5 --reference\n\n"
           << model << "\n" << io << "\n" << check << "\n" << run;
      throw HelpRequested{text.str()};
    }
    po::notify(values);
  } catch (const po::error& error) {
    throw dae::Error(error.what());
  }
  parse_choice(values, "noise-type", options.noise_type);
  parse_choice(values, "device", options.device);
  parse_choice(values, "kernels", options.kernels);
  const std::string colour = values["colour"].as<std::string>();
  require(colour == "refuse" || colour == "luminance",
          "colour: '" + colour + "' is not one of refuse, luminance");
  options.colour = colour == "luminance" ? dae::ColourPolicy::kLuminance : dae::ColourPolicy::kRefuse;

  require(options.checkpoint.empty() != options.run_dir.empty(),
          "give one of --checkpoint CKPT and --run-dir DIR");
  require(!options.inputs.empty(), "no INPUT given (images, folders, an IDX or HDF5 file)");
  require(!options.out.empty(), "--out is required");
  const double largest_level = options.noise_type == dae::NoiseType::kGaussian
                                   ? dae::kMaxNoiseLevel : 1.0;
  require(std::isfinite(options.add_noise) && options.add_noise >= 0 &&
              options.add_noise <= largest_level,
          "add-noise: must be between 0 and " + dae::json_number(largest_level) + " for " +
              dae::name_of(options.noise_type) + " noise");
  require(!options.reference || options.add_noise > 0,
          "reference: needs --add-noise C (the inputs are then the clean references)");
  require(options.threads >= 0 && options.threads <= dae::kMaxThreads,
          "threads: must be between 0 and " + std::to_string(dae::kMaxThreads));
  require(options.batch >= 1 && options.batch <= kMaxBatch,
          "batch: must be between 1 and " + std::to_string(kMaxBatch));
  require(options.tile == 0 || (options.tile >= 64 && options.tile % dae::kNetworkStride == 0 &&
                                options.tile <= 1 << 16),
          "tile: must be 0 or a multiple of 4 from 64 to 65536");
  return options;
}

// Corrupts each image by --add-noise with its own source (owner: its index among all inputs).
torch::Tensor add_noise(const Options& options, const torch::Tensor& clean, std::int64_t first) {
  if (options.add_noise == 0) return clean;
  std::vector<torch::Tensor> noisy;
  for (std::int64_t i = 0; i < clean.size(0); ++i) {
    dae::NoiseSource source(static_cast<std::uint64_t>(options.seed), static_cast<int>(first + i),
                            kDenoiseNoiseStream, options.noise_type);
    noisy.push_back(source.corrupt(clean[i], options.add_noise));
  }
  return torch::stack(noisy);
}

// Values a float input may hold: the network was trained on pixels in [0, 1].
void check_pixel_values(const torch::Tensor& images, const std::string& where,
                        std::int64_t first_row) {
  const torch::Tensor flat = images.flatten();
  const torch::Tensor bad =
      flat.isfinite().logical_not().logical_or(flat.lt(0)).logical_or(flat.gt(1));
  if (!bad.any().item<bool>()) return;
  const std::int64_t at = bad.nonzero()[0][0].item<std::int64_t>();
  char value[32];
  std::snprintf(value, sizeof value, "%g", flat[at].item<float>());
  throw dae::Error(where + ": image " + std::to_string(first_row + at / images[0].numel()) +
                   " holds " + value + " (pixels must be finite, in [0, 1])");
}

class Job {
 public:
  Job(const Options& options, const dae::DenoisePlan& plan, dae::Communicator& comm, dae::ImageDenoiser& net)
      : options_(options), plan_(plan), comm_(comm), net_(net) {}

  // Denoises this rank's share and writes its outputs; returns the images it denoised.
  std::int64_t run();
  double network_seconds() const { return network_seconds_; }

 private:
  void run_images();
  void run_array();
  torch::Tensor denoise(const torch::Tensor& noisy) {
    const auto start = std::chrono::steady_clock::now();
    torch::Tensor output = net_.denoise(noisy);
    network_seconds_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return output;
  }
  void report(const std::vector<dae::QualitySums>& per_item,
              const std::vector<std::string>& names);

  const Options& options_;
  const dae::DenoisePlan& plan_;
  dae::Communicator& comm_;
  dae::ImageDenoiser& net_;
  double network_seconds_ = 0;
  std::int64_t images_ = 0;
};

std::int64_t Job::run() {
  if (plan_.kind == dae::InputKind::kImage)
    run_images();
  else
    run_array();
  return images_;
}

// Files by index: rank r takes files r, r + size, ...; consecutive ones of one size go through
// the network together. In rounds, each collective: a file that fails to read or write ends the
// job with its one line on every rank alike, wherever it lies.
void Job::run_images() {
  const std::size_t files = plan_.inputs.size();
  std::vector<dae::QualitySums> per_file(files);
  struct Pending {
    std::size_t index;
    dae::Image image;
  };
  auto read = [&](std::size_t index) {
    dae::Image image = dae::read_image(plan_.inputs[index], options_.colour);
    if (image.width < dae::kMinImageSide || image.height < dae::kMinImageSide)
      throw dae::Error(plan_.inputs[index] + ": " + std::to_string(image.width) + " x " +
                       std::to_string(image.height) + " pixels; the network needs at least " +
                       std::to_string(dae::kMinImageSide) + " x " +
                       std::to_string(dae::kMinImageSide));
    return Pending{index, std::move(image)};
  };
  auto process = [&](const std::vector<Pending>& group) {
    std::vector<torch::Tensor> clean_images, noisy_images;
    for (const Pending& item : group) {
      const torch::Tensor clean = torch::from_blob(const_cast<float*>(item.image.pixels.data()),
                                                   {1, item.image.height, item.image.width},
                                                   torch::kFloat32);
      clean_images.push_back(clean);
      noisy_images.push_back(add_noise(options_, clean, static_cast<std::int64_t>(item.index)));
    }
    const torch::Tensor clean = torch::cat(clean_images), noisy = torch::cat(noisy_images);
    const torch::Tensor output = denoise(noisy);
    for (std::size_t i = 0; i < group.size(); ++i) {
      const Pending& item = group[i];
      const auto row = static_cast<std::int64_t>(i);
      dae::Image result = item.image;
      const torch::Tensor one = output[row].contiguous();
      std::copy(one.data_ptr<float>(), one.data_ptr<float>() + one.numel(), result.pixels.begin());
      const fs::path path = plan_.outputs[item.index];
      if (path.has_parent_path()) fs::create_directories(path.parent_path());
      dae::write_image(path.string(), result, dae::image_format_of(plan_.inputs[item.index]));
      if (!options_.reference) continue;
      per_file[item.index].add(noisy.narrow(0, row, 1), output.narrow(0, row, 1),
                               clean.narrow(0, row, 1));
    }
    images_ += static_cast<std::int64_t>(group.size());
  };
  std::size_t next = static_cast<std::size_t>(comm_.rank());
  std::vector<Pending> carried;  // read, but of another size than the group it was read for
  for (bool done = false; !done;) {
    std::vector<Pending> group;
    comm_.run_collectively([&] {
      group = std::move(carried);
      carried.clear();
      while (next < files && static_cast<long>(group.size()) < options_.batch) {
        Pending item = read(next);
        next += static_cast<std::size_t>(comm_.size());
        if (!group.empty() && (item.image.width != group.front().image.width ||
                               item.image.height != group.front().image.height)) {
          carried.push_back(std::move(item));
          break;
        }
        group.push_back(std::move(item));
      }
      if (!group.empty()) process(group);
    });
    done = comm_.all_agree(group.empty());
  }
  if (options_.reference) report(per_file, plan_.inputs);
}

// Rows by hyperslab: rank r reads rows [N r / size, N (r + 1) / size) alone; rank 0 gathers the
// outputs and writes the one output file.
void Job::run_array() {
  const std::string& path = plan_.inputs.front();
  const bool hdf5 = plan_.kind == dae::InputKind::kHdf5;
  std::vector<std::uint64_t> dims;
  std::string where;
  std::int64_t rows = 0, height = 0, width = 0, first = 0, count = 0;
  torch::Tensor output;
  dae::QualitySums quality;
  comm_.run_collectively([&] {
    if (hdf5) {
      const dae::H5File file = dae::H5File::open_read_only(path);
      require(file.has(options_.dataset), path + ": no dataset " + options_.dataset);
      dims = file.dims(options_.dataset);
    } else {
      for (const std::uint32_t dim : dae::read_idx_dims(path)) dims.push_back(dim);
    }
    where = hdf5 ? path + ": " + options_.dataset : path;
    require(dims.size() == 3 && dims[0] > 0,
            where + ": expected images [N, H, W], found " + std::to_string(dims.size()) +
                " dimensions" + (dims.size() == 3 ? " and no image" : ""));
    require(dims[1] >= dae::kMinImageSide && dims[2] >= dae::kMinImageSide,
            where + ": " + std::to_string(dims[2]) + " x " + std::to_string(dims[1]) +
                " pixels; the network needs at least 4 x 4");
    require(dims[1] * dims[2] <= static_cast<std::uint64_t>(dae::kMaxImagePixels),
            where + ": images of more than " + std::to_string(dae::kMaxImagePixels) + " pixels");
    rows = static_cast<std::int64_t>(dims[0]);
    height = static_cast<std::int64_t>(dims[1]);
    width = static_cast<std::int64_t>(dims[2]);
    first = rows * comm_.rank() / comm_.size();
    count = rows * (comm_.rank() + 1) / comm_.size() - first;

    torch::Tensor clean;
    if (hdf5) {
      const dae::H5File file = dae::H5File::open_read_only(path);
      if (file.stores_uint8(options_.dataset)) {
        std::vector<std::uint8_t> bytes(static_cast<std::size_t>(count * height * width));
        file.read_rows(options_.dataset, static_cast<std::uint64_t>(first),
                       static_cast<std::uint64_t>(count), bytes.data());
        clean = torch::from_blob(bytes.data(), {count, height, width}, torch::kUInt8)
                    .to(torch::kFloat32)
                    .div_(255);
      } else {
        clean = torch::empty({count, height, width}, torch::kFloat32);
        file.read_rows(options_.dataset, static_cast<std::uint64_t>(first),
                       static_cast<std::uint64_t>(count), clean.data_ptr<float>());
        check_pixel_values(clean, where, first);
      }
    } else {
      dae::IdxArray part = dae::read_idx_rows(path, static_cast<std::uint64_t>(first),
                                              static_cast<std::uint64_t>(count));
      clean = torch::from_blob(part.data.data(), {count, height, width}, torch::kUInt8)
                  .to(torch::kFloat32)
                  .div_(255);
    }
    const torch::Tensor noisy = add_noise(options_, clean, first);
    output = count > 0 ? denoise(noisy) : torch::empty({0, height, width});
    images_ += count;
    if (options_.reference && count > 0) quality.add(noisy, output, clean);
  });

  // Every rank's rows to rank 0, padded to the largest share (a gather moves equal lengths).
  const std::int64_t share = (rows + comm_.size() - 1) / comm_.size();
  torch::Tensor mine = torch::zeros({share, height, width});
  mine.narrow(0, 0, count).copy_(output);
  torch::Tensor all = torch::empty({share * comm_.size(), height, width});
  comm_.all_gather(mine, all);
  comm_.run_collectively([&] {
    if (comm_.rank() != 0) return;
    std::vector<torch::Tensor> parts;
    for (int r = 0; r < comm_.size(); ++r) {
      const std::int64_t begin = rows * r / comm_.size(), end = rows * (r + 1) / comm_.size();
      parts.push_back(all.narrow(0, r * share, end - begin));
    }
    const torch::Tensor result = torch::cat(parts).contiguous();
    if (hdf5) {
      // The network's output as it is (float, not clipped), at the input's dataset path.
      dae::H5File file = dae::H5File::create_in_memory(options_.out);
      const std::string parent = fs::path(options_.dataset).parent_path().string();
      if (!parent.empty() && parent != "/") file.create_group(parent);
      file.write(options_.dataset, dims, result.data_ptr<float>());
      dae::write_file_durably(options_.out, file.image());
    } else {
      // IDX holds bytes: the output rounded to 0..255, as the input was stored.
      dae::IdxArray array;
      array.dims = {static_cast<std::uint32_t>(rows), static_cast<std::uint32_t>(height),
                    static_cast<std::uint32_t>(width)};
      const torch::Tensor bytes =
          result.clamp(0, 1).mul(255).round().to(torch::kUInt8).contiguous();
      array.data.assign(bytes.data_ptr<std::uint8_t>(), bytes.data_ptr<std::uint8_t>() + bytes.numel());
      dae::write_file_durably(options_.out, dae::encode_idx(array));
    }
  });
  if (options_.reference) report({quality}, {where});
}

// --reference: every rank's sums to rank 0, which prints a line per item and the total, and
// writes them as JSON.
void Job::report(const std::vector<dae::QualitySums>& per_item,
                 const std::vector<std::string>& names) {
  torch::Tensor sums = torch::empty({static_cast<std::int64_t>(per_item.size()),
                                     dae::QualitySums::kValues}, torch::kFloat64);
  for (std::size_t i = 0; i < per_item.size(); ++i) {
    const auto values = per_item[i].values();
    std::copy(values.begin(), values.end(),
              sums.data_ptr<double>() + i * dae::QualitySums::kValues);
  }
  comm_.all_reduce_sum(sums);
  comm_.run_collectively([&] {
    if (comm_.rank() != 0) return;
    auto means = [](const dae::QualitySums::Means& m) {
      // JSON has no NaN: SSIM of images below its window is null.
      return nlohmann::json{{"mse", m.mse},
                            {"psnr_db", m.psnr},
                            {"ssim", std::isnan(m.ssim) ? nlohmann::json() : nlohmann::json(m.ssim)}};
    };
    auto print = [](const std::string& name, const dae::QualitySums& q) {
      const auto in = q.input_means(), out = q.output_means();
      std::printf("%s: %.0f images  input MSE %.6f PSNR %.2f dB SSIM %.4f  ->  output MSE %.6f "
                  "PSNR %.2f dB SSIM %.4f\n",
                  name.c_str(), q.images, in.mse, in.psnr, in.ssim, out.mse, out.psnr, out.ssim);
    };
    nlohmann::json files = nlohmann::json::array();
    dae::QualitySums overall;
    for (std::size_t i = 0; i < names.size(); ++i) {
      const auto item = dae::QualitySums::from_values(sums.data_ptr<double>() +
                                                      i * dae::QualitySums::kValues);
      overall += item;
      print(names[i], item);
      files.push_back({{"file", names[i]},
                       {"images", item.images},
                       {"input", means(item.input_means())},
                       {"output", means(item.output_means())}});
    }
    print("overall", overall);
    const nlohmann::json summary = {
        {"noise_type", dae::name_of(options_.noise_type)},
        {"noise", options_.add_noise},
        {"seed", options_.seed},
        {"files", files},
        {"overall",
         {{"images", overall.images},
          {"input", means(overall.input_means())},
          {"output", means(overall.output_means())}}}};
    std::string path = options_.summary;
    if (path.empty())
      path = plan_.kind == dae::InputKind::kImage
                 ? (fs::path(options_.out) / "summary.json").string()
                 : options_.out + ".summary.json";
    dae::write_file_durably(path, summary.dump(2) + "\n");
    std::printf("quality: %s\n", path.c_str());
  });
}

int threads_per_rank(const Options& options, int ranks_on_node) {
  if (options.threads > 0) return static_cast<int>(options.threads);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / ranks_on_node);
}

torch::Device choose_device(const Options& options, const dae::MpiComm& world) {
  const bool has_gpu = torch::cuda::is_available();
  if (options.device == dae::DeviceKind::kCuda && !has_gpu)
    throw dae::Error("device: cuda asked for, but no GPU is visible to this process");
  if (options.device == dae::DeviceKind::kCpu || !has_gpu) return torch::kCPU;
  return {torch::kCUDA,
          static_cast<c10::DeviceIndex>(world.local_rank() % torch::cuda::device_count())};
}

int denoise_job(dae::MpiComm& world, int argc, char** argv) {
  dae::MpiCommunicator comm(world);
  Options options;
  try {
    comm.run_collectively([&] { options = parse_options(argc, argv); });
  } catch (const HelpRequested& help) {
    if (world.rank() == 0) std::fputs(help.text.c_str(), stdout);
    return 0;
  }
  torch::set_num_threads(threads_per_rank(options, world.local_size()));

  std::string text;
  comm.run_collectively([&] {
    if (comm.rank() == 0)
      text = dae::make_denoise_plan(options.inputs, options.out, options.dataset, options.overwrite)
                 .text();
  });
  comm.broadcast_text(text, 0);
  const dae::DenoisePlan plan = dae::DenoisePlan::from_text(text);

  dae::TrainedModel trained;
  torch::Device device = torch::kCPU;
  comm.run_collectively([&] {
    const std::string checkpoint =
        options.checkpoint.empty() ? dae::newest_checkpoint(options.run_dir) : options.checkpoint;
    trained = dae::load_trained_model(checkpoint);
    if (trained.options.kind != dae::ModelKind::kConv)
      throw dae::Error(checkpoint + ": an " + dae::name_of(trained.options.kind) + " model; " +
                       "dae_denoise runs the conv network only (a fully connected one is fixed "
                       "to 28 x 28 images)");
    device = choose_device(options, world);
    trained.model->to(device);
  });
  auto* conv = dynamic_cast<dae::ConvDaeImpl*>(trained.model.get());
  dae::DenoiserOptions net_options;
  net_options.tile = static_cast<int>(options.tile);
  net_options.batch = static_cast<int>(options.batch);
  // The fused kernels as in training: auto takes them where the CPU has a SIMD variant.
  net_options.fused = options.kernels == dae::KernelChoice::kFused ||
                      (options.kernels == dae::KernelChoice::kAuto &&
                       dae::kernels::current_isa() != dae::kernels::Isa::kGeneric);
  if (options.kernels == dae::KernelChoice::kFused && !device.is_cpu())
    throw dae::Error("kernels: 'fused' runs on the CPU only; this rank uses " + device.str());
  dae::ImageDenoiser net(*conv, net_options);
  if (comm.rank() == 0) {
    const std::string runs_on =
        !device.is_cpu() ? device.str()
                         : net_options.fused ? std::string("fused kernels ") + dae::kernels::isa()
                                             : "LibTorch on the CPU";
    std::printf("model: %s (step %lld); %zu input%s; %d rank%s x %d threads, %s\n",
                trained.path.c_str(), static_cast<long long>(trained.step), plan.inputs.size(),
                plan.inputs.size() == 1 ? "" : "s", comm.size(), comm.size() == 1 ? "" : "s",
                torch::get_num_threads(), runs_on.c_str());
    std::fflush(stdout);
  }

  const auto start = std::chrono::steady_clock::now();
  Job job(options, plan, comm, net);
  const std::int64_t mine = job.run();
  torch::Tensor images = torch::tensor({static_cast<double>(mine)}, torch::kFloat64);
  comm.all_reduce_sum(images);
  // The ranks run side by side: the slowest one's time in the network is the job's.
  const double network = comm.max(job.network_seconds());
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double count = images.item<double>();
  if (comm.rank() == 0)
    std::printf("denoised %.0f images in %.2f s (%.0f images/s; in the network %.3f s, %.0f "
                "images/s) -> %s\n",
                count, wall, count / wall, network, network > 0 ? count / network : 0.0,
                options.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dae::run_job(kProgram, argc, argv,
                      [&](dae::MpiComm& world) { return denoise_job(world, argc, argv); });
}
