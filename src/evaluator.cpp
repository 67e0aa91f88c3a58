#include "dae/evaluator.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dae/dataset.hpp"
#include "dae/error.hpp"
#include "dae/files.hpp"
#include "dae/fused_conv_dae.hpp"
#include "dae/h5.hpp"
#include "dae/image_io.hpp"
#include "dae/metrics.hpp"
#include "dae/mpi.hpp"
#include "dae/noise.hpp"
#include "dae/plot.hpp"
#include "dae/tensorboard.hpp"
#include "dae/trainer.hpp"

namespace dae {

namespace fs = std::filesystem;

namespace {

// Noise streams: the trainer uses 1 (and odd numbers after a resume on another world size);
// evaluation blocks and the grids use these even ones, so no two ever share a stream.
constexpr std::uint64_t kEvalNoiseStream = 2;
constexpr std::uint64_t kGridNoiseStream = 4;
constexpr int kCodeLayerDigits = 4;

std::string level_text(double level) {
  char text[16];
  std::snprintf(text, sizeof text, "%.2f", level);
  return text;
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// The first test image of each class present, in class order: [n, 1, 28, 28] in [0, 1].
torch::Tensor one_digit_per_class(const std::string& data_path) {
  const H5File file = H5File::open_read_only(data_path);
  const std::vector<std::uint8_t> labels = file.read<std::uint8_t>("/test/labels");
  std::vector<torch::Tensor> digits;
  for (int digit = 0; digit <= 9; ++digit) {
    const auto found = std::find(labels.begin(), labels.end(), digit);
    if (found == labels.end()) continue;
    torch::Tensor image = torch::empty({1, kImageSide, kImageSide}, torch::kUInt8);
    file.read_rows("/test/images", static_cast<std::uint64_t>(found - labels.begin()), 1,
                   image.data_ptr<std::uint8_t>());
    digits.push_back(image);
  }
  return to_unit_float(torch::cat(digits));
}

}  // namespace

std::vector<NoiseMetrics> evaluate_noise_sweep(Denoiser& model, Communicator& comm,
                                               const Config& config) {
  torch::NoGradGuard no_grad;
  model.eval();
  const NoiseType type = parse_noise_type(config.noise_type);
  const torch::Device device = device_of(model);
  const auto total = static_cast<std::int64_t>(count_rows(config.data, "test"));
  const std::int64_t batch = config.eval_batch;
  const std::int64_t blocks = (total + batch - 1) / batch;
  const auto level_count = static_cast<std::int64_t>(config.eval_noise.size());
  // The conv model on the CPU runs through the fused kernels, a training batch at a time: faster,
  // and without LibTorch's per-layer buffers for a whole evaluation batch (≈ 200 MB at 500).
  const std::unique_ptr<FusedConvDaeStep> fused =
      make_fused_step(config, model, std::min(config.batch_size, batch));

  // Per level: sums of squared error, pixels, PSNR, SSIM and images; reduced in float64.
  torch::Tensor sums = torch::zeros({level_count, 5}, torch::kFloat64);  // on the host
  for (std::int64_t block = comm.rank(); block < blocks; block += comm.size()) {
    const std::int64_t first = block * batch;
    const std::int64_t rows = std::min(batch, total - first);
    const Shard part = Shard::read(config.data, "test", static_cast<std::uint64_t>(first),
                                   static_cast<std::uint64_t>(rows));
    const torch::Tensor clean = to_unit_float(part.images.to(device));
    for (std::int64_t level = 0; level < level_count; ++level) {
      NoiseSource noise(static_cast<std::uint64_t>(config.seed), static_cast<int>(level),
                        kEvalNoiseStream + 1000 * static_cast<std::uint64_t>(block), type,
                        device);
      const torch::Tensor noisy = noise.corrupt(clean, config.eval_noise[level]);
      const torch::Tensor denoised = fused ? fused->forward(noisy) : model.forward(noisy);
      const torch::Tensor shown = denoised.clamp(0, 1);
      auto sum = sums.accessor<double, 2>()[level];
      sum[0] += (denoised - clean).pow(2).sum().item<double>();
      sum[1] += static_cast<double>(clean.numel());
      sum[2] += per_image_psnr(shown, clean).sum().item<double>();
      sum[3] += per_image_ssim(shown, clean).sum().item<double>();
      sum[4] += static_cast<double>(rows);
    }
  }
  // The communicator reduces on its own device (NCCL: the GPU).
  torch::Tensor reduced = sums.to(device);
  comm.all_reduce_sum(reduced);
  sums = reduced.cpu();
  model.train();

  std::vector<NoiseMetrics> metrics;
  for (std::int64_t level = 0; level < level_count; ++level) {
    const auto row = sums[level];
    const double images = row[4].item<double>();
    metrics.push_back({config.eval_noise[level], row[0].item<double>() / row[1].item<double>(),
                       row[2].item<double>() / images, row[3].item<double>() / images,
                       static_cast<std::int64_t>(images)});
  }
  return metrics;
}

std::vector<DeadChannels> dead_channels_on_test_set(Denoiser& model, Communicator& comm,
                                                    const Config& config) {
  torch::NoGradGuard no_grad;
  const torch::Device device = device_of(model);
  const auto total = static_cast<std::int64_t>(count_rows(config.data, "test"));
  const std::int64_t blocks = (total + config.eval_batch - 1) / config.eval_batch;
  std::vector<DeadChannels> layout;
  // How many blocks each channel was alive in, summed over ranks: dead where that is 0.
  torch::Tensor alive =
      channel_peaks(model, torch::zeros({1, 1, kImageSide, kImageSide}, device), &layout).zero_();
  for (std::int64_t block = comm.rank(); block < blocks; block += comm.size()) {
    const std::int64_t first = block * config.eval_batch;
    const std::int64_t rows = std::min(config.eval_batch, total - first);
    const Shard part = Shard::read(config.data, "test", static_cast<std::uint64_t>(first),
                                   static_cast<std::uint64_t>(rows));
    alive.add_(channel_peaks(model, to_unit_float(part.images.to(device))).gt(0).to(torch::kFloat32));
  }
  comm.all_reduce_sum(alive);
  return dead_channels(alive, std::move(layout));
}

Evaluator::Evaluator(const Config& config, Communicator& comm, bool continue_history)
    : config_(config),
      comm_(comm),
      directory_((fs::path(config.run_dir) / "eval").string()),
      continue_history_(continue_history) {}

std::vector<NoiseMetrics> Evaluator::evaluate(Denoiser& model, const TrainState& state) {
  const std::vector<NoiseMetrics> metrics = evaluate_noise_sweep(model, comm_, config_);
  dead_ = dead_channels_on_test_set(model, comm_, config_);
  if (comm_.rank() == 0) {
    if (!history_loaded_) load_history(state.step);
    history_loaded_ = true;
    for (const NoiseMetrics& level : metrics)
      history_.push_back({state.step, level, total_dead(dead_)});
    if (total_dead(dead_) > 0)
      std::fprintf(stderr,
                   "dae_dist: warning: step %lld: dead ReLU channels on the clean test set (0 for "
                   "every image): %s\n",
                   static_cast<long long>(state.step), describe_dead(dead_).c_str());
  }
  // Rank 0 writes; a failure there (disk full) must end every rank, not leave them waiting.
  torch::Tensor failed = torch::zeros({1}, torch::kFloat64).to(device_of(model));
  std::string failure;
  if (comm_.rank() == 0) {
    try {
      write_outputs(model, state);
    } catch (const std::exception& error) {
      failure = one_line(error);
      failed.fill_(1.0);
    }
  }
  comm_.all_reduce_sum(failed);
  if (failed.item<double>() > 0) {
    if (comm_.rank() == 0) std::fprintf(stderr, "dae_dist: %s\n", failure.c_str());
    throw ReportedError(failure);
  }
  return metrics;
}

void Evaluator::load_history(std::int64_t before_step) {
  const std::string path = directory_ + "/metrics.csv";
  std::ifstream in(path);
  if (!continue_history_ || !in) return;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string step, type, noise, mse, psnr, ssim, images, dead = "-1";
    if (!std::getline(fields, step, ',') || !std::getline(fields, type, ',') ||
        !std::getline(fields, noise, ',') || !std::getline(fields, mse, ',') ||
        !std::getline(fields, psnr, ',') || !std::getline(fields, ssim, ',') ||
        !std::getline(fields, images, ','))
      continue;
    std::getline(fields, dead, ',');  // absent in files of older versions
    try {
      // Rows from steps after the one we resumed at belong to a timeline this run abandoned.
      if (type != config_.noise_type || std::stoll(step) >= before_step) continue;
      history_.push_back({std::stoll(step),
                          {std::stod(noise), std::stod(mse), std::stod(psnr), std::stod(ssim),
                           std::stoll(images)},
                          std::stoll(dead)});
    } catch (const std::exception&) {
      continue;  // a malformed line is dropped, not fatal: the file is our own log
    }
  }
}

void Evaluator::write_outputs(Denoiser& model, const TrainState& state) {
  fs::create_directories(directory_);
  torch::NoGradGuard no_grad;
  model.eval();
  const std::string grids = write_grids(model, state.step);
  write_code_layer(model);
  model.train();
  write_tables();
  if (tensorboard_ != nullptr) {
    for (const Row& row : history_) {
      if (row.step != state.step) continue;
      const std::string level = "/noise_" + level_text(row.metrics.noise);
      tensorboard_->scalar("test_mse" + level, row.step, row.metrics.mse);
      tensorboard_->scalar("test_psnr" + level, row.step, row.metrics.psnr);
      tensorboard_->scalar("test_ssim" + level, row.step, row.metrics.ssim);
    }
    for (const auto& layer : dead_)
      tensorboard_->scalar("test_dead_channels/" + layer.layer, state.step,
                           static_cast<double>(layer.dead));
    tensorboard_->flush();
  }

  std::vector<std::pair<std::int64_t, double>> clean_mse;
  for (const Row& row : history_)
    if (row.metrics.noise == 0.0) clean_mse.emplace_back(row.step, row.metrics.mse);
  plot_loss(directory_ + "/loss.png", state.loss_history, clean_mse);
  // The sweep as the seed's figures show it: each evaluation's metrics against the noise level.
  std::vector<SweepCurve> curves;
  for (const Row& row : history_) {
    const std::string label = "step " + std::to_string(row.step);
    if (curves.empty() || curves.back().label != label) curves.push_back({label, {}, {}, {}, {}});
    curves.back().noise.push_back(row.metrics.noise);
    curves.back().mse.push_back(row.metrics.mse);
    curves.back().psnr.push_back(row.metrics.psnr);
    curves.back().ssim.push_back(row.metrics.ssim);
  }
  plot_sweep(directory_ + "/sweep.png", curves, config_.noise);

  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>dae_dist: "
       << html_escape(config_.run_dir) << "</title>\n"
       << "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #999;padding:3px 8px;text-align:right}"
          "img{image-rendering:pixelated;display:block;margin:4px 0 16px}</style></head>\n"
       << "<body>\n<h1>dae_dist evaluation at step " << state.step << "</h1>\n";
  html << "<h2>Metrics (" << html_escape(config_.noise_type)
       << " noise, whole test set)</h2>\n<table><tr><th>step</th><th>noise</th><th>MSE</th>"
          "<th>PSNR (dB)</th><th>SSIM</th><th>images</th></tr>\n";
  for (const Row& row : history_) {
    char cells[200];
    std::snprintf(cells, sizeof cells,
                  "<tr><td>%lld</td><td>%.2f</td><td>%.6f</td><td>%.2f</td><td>%.4f</td>"
                  "<td>%lld</td></tr>\n",
                  static_cast<long long>(row.step), row.metrics.noise, row.metrics.mse,
                  row.metrics.psnr, row.metrics.ssim, static_cast<long long>(row.metrics.images));
    html << cells;
  }
  html << "</table>\n<p>Dead ReLU channels (0 for every clean test image) at step " << state.step
       << ": " << html_escape(describe_dead(dead_)) << "</p>\n<h2>Loss</h2>\n<img src=\"loss.png\" alt=\"loss curve\">\n"
       << "<h2>Denoising against the noise level</h2>\n<p>Each evaluation's test metrics; the "
          "vertical line marks the training noise " << level_text(config_.noise) << ".</p>\n"
       << "<img src=\"sweep.png\" alt=\"metrics against noise level\">\n"
       << "<h2>Denoising: rows clean, noisy, denoised</h2>\n" << grids
       << "<h2>Code layer</h2>\n<p>Each row one test digit, each cell one channel of the code, "
          "scaled to the digit's largest activation.</p>\n"
       << "<img src=\"code_layer.png\" alt=\"code layer\">\n"
       << "<h2>Configuration</h2>\n<pre>" << html_escape(describe_config(config_)) << "</pre>\n"
       // Lets a headless browser (and a reader) see at once whether every image decoded.
       << "<script>window.addEventListener('load', function () {\n"
          "  var images = Array.from(document.images);\n"
          "  var broken = images.filter(function (i) { return !i.complete || i.naturalWidth === 0; });\n"
          "  document.body.setAttribute('data-images', images.length);\n"
          "  document.body.setAttribute('data-images-broken', broken.length);\n"
          "});</script>\n</body></html>\n";
  write_file_durably(directory_ + "/report.html", html.str());
}

std::string Evaluator::write_grids(Denoiser& model, std::int64_t step) {
  const torch::Device device = device_of(model);
  const torch::Tensor clean = one_digit_per_class(config_.data).to(device);
  const NoiseType type = parse_noise_type(config_.noise_type);
  std::ostringstream html;
  for (std::size_t level = 0; level < config_.eval_noise.size(); ++level) {
    NoiseSource noise(static_cast<std::uint64_t>(config_.seed), static_cast<int>(level),
                      kGridNoiseStream, type, device);
    const torch::Tensor noisy = noise.corrupt(clean, config_.eval_noise[level]);
    const torch::Tensor cells = torch::stack({clean, noisy, model.forward(noisy)}).squeeze(2);
    const std::string name =
        "grid_" + config_.noise_type + "_" + level_text(config_.eval_noise[level]) + ".png";
    const GrayImage grid = tile(cells, 3, 4);
    const std::vector<std::uint8_t> png = encode_png(grid.width, grid.height, 1, grid.pixels.data());
    write_file_durably(directory_ + "/" + name, png);
    if (tensorboard_ != nullptr)
      tensorboard_->image("grid/noise_" + level_text(config_.eval_noise[level]), step, grid.width,
                          grid.height, 1, png);
    html << "<h3>noise " << level_text(config_.eval_noise[level]) << "</h3>\n<img src=\"" << name
         << "\" alt=\"grid at noise " << level_text(config_.eval_noise[level]) << "\">\n";
  }
  return html.str();
}

void Evaluator::write_code_layer(Denoiser& model) {
  const torch::Tensor digits = one_digit_per_class(config_.data).to(device_of(model));
  const torch::Tensor images = digits.narrow(0, 0, std::min<std::int64_t>(kCodeLayerDigits,
                                                                         digits.size(0)));
  torch::Tensor code = model.encode(images);
  const int scale = code.dim() == 4 ? 4 : 16;
  if (code.dim() == 2) code = code.view({code.size(0), code.size(1), 1, 1});
  // Each digit's channels share one scale, so channels can be compared within a row.
  const torch::Tensor peak = code.flatten(1).amax(1).clamp_min(1e-12).view({-1, 1, 1, 1});
  write_png(directory_ + "/code_layer.png", tile(code / peak, scale, 2));
}

void Evaluator::write_tables() {
  std::ostringstream csv;
  csv << "step,noise_type,noise,mse,psnr,ssim,images,dead_channels\n";
  std::vector<std::int64_t> steps, images, dead;
  std::vector<double> noise, mse, psnr, ssim;
  for (const Row& row : history_) {
    csv << row.step << "," << config_.noise_type << "," << json_number(row.metrics.noise) << ","
        << json_number(row.metrics.mse) << "," << json_number(row.metrics.psnr) << ","
        << json_number(row.metrics.ssim) << "," << row.metrics.images << ","
        << row.dead_channels << "\n";
    dead.push_back(row.dead_channels);
    steps.push_back(row.step);
    images.push_back(row.metrics.images);
    noise.push_back(row.metrics.noise);
    mse.push_back(row.metrics.mse);
    psnr.push_back(row.metrics.psnr);
    ssim.push_back(row.metrics.ssim);
  }
  write_file_durably(directory_ + "/metrics.csv", csv.str());

  // Built in memory and written by write_file_durably: HDF5 never fails half-way through a file
  // on disk (HDF5 1.10 crashes at exit closing such a file).
  const std::string path = directory_ + "/eval.h5";
  H5File file = H5File::create_in_memory(path);
  const std::vector<std::uint64_t> dims{history_.size()};
  file.write<std::int64_t>("/step", dims, steps.data());
  file.write<double>("/noise", dims, noise.data());
  file.write<double>("/mse", dims, mse.data());
  file.write<double>("/psnr", dims, psnr.data());
  file.write<double>("/ssim", dims, ssim.data());
  file.write<std::int64_t>("/images", dims, images.data());
  file.write<std::int64_t>("/dead_channels", dims, dead.data());
  file.write_attribute("/", "noise_type", config_.noise_type);
  const std::vector<std::uint8_t> bytes = file.image();
  file.close();
  write_file_durably(path, bytes);
}

}  // namespace dae
