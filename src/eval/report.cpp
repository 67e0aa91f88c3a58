#include "dae/eval/report.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dae/core/files.hpp"
#include "dae/data/dataset.hpp"
#include "dae/data/noise.hpp"
#include "dae/io/h5.hpp"
#include "dae/io/idx.hpp"
#include "dae/io/image_io.hpp"
#include "dae/io/plot.hpp"
#include "dae/io/tensorboard.hpp"

namespace dae {

namespace fs = std::filesystem;

namespace {

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

EvalReport::EvalReport(const Config& config, bool continue_history)
    : config_(config),
      directory_((fs::path(config.run_dir) / "eval").string()),
      continue_history_(continue_history) {}

void EvalReport::add(Denoiser& model, std::int64_t step, const TestSetResult& result,
                     const std::vector<std::pair<std::int64_t, double>>& loss_history) {
  dead_ = result.dead;
  if (!history_loaded_) load_history(step);
  history_loaded_ = true;
  for (const NoiseMetrics& level : result.metrics)
    history_.push_back({step, level});
  write_outputs(model, step, loss_history);
}

void EvalReport::load_history(std::int64_t before_step) {
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
      if (type != name_of(config_.noise_type) || std::stoll(step) >= before_step) continue;
      history_.push_back({std::stoll(step),
                          {std::stod(noise), std::stod(mse), std::stod(psnr), std::stod(ssim),
                           std::stoll(images), std::stoll(dead)}});
    } catch (const std::exception&) {
      continue;  // a malformed line is dropped, not fatal: the file is our own log
    }
  }
}

void EvalReport::write_outputs(Denoiser& model, std::int64_t step,
                              const std::vector<std::pair<std::int64_t, double>>& loss_history) {
  fs::create_directories(directory_);
  torch::NoGradGuard no_grad;
  model.eval();
  const std::string grids = write_grids(model, step);
  write_code_layer(model);
  model.train();
  write_tables();
  if (tensorboard_ != nullptr) {
    for (const Row& row : history_) {
      if (row.step != step) continue;
      const std::string level = "/noise_" + level_text(row.metrics.noise);
      tensorboard_->scalar("test_mse" + level, row.step, row.metrics.mse);
      tensorboard_->scalar("test_psnr" + level, row.step, row.metrics.psnr);
      tensorboard_->scalar("test_ssim" + level, row.step, row.metrics.ssim);
    }
    for (const auto& layer : dead_)
      tensorboard_->scalar("test_dead_channels/" + layer.layer, step,
                           static_cast<double>(layer.dead));
    tensorboard_->flush();
  }

  std::vector<std::pair<std::int64_t, double>> clean_mse;
  for (const Row& row : history_)
    if (row.metrics.noise == 0.0) clean_mse.emplace_back(row.step, row.metrics.mse);
  plot_loss(directory_ + "/loss.png", loss_history, clean_mse);
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
       << "<body>\n<h1>dae_dist evaluation at step " << step << "</h1>\n";
  html << "<h2>Metrics (" << html_escape(name_of(config_.noise_type))
       << " noise, whole test set)</h2>\n<table><tr><th>step</th><th>noise</th><th>MSE</th>"
          "<th>PSNR (dB)</th><th>SSIM</th><th>images</th><th>dead channels</th></tr>\n";
  for (const Row& row : history_) {
    char cells[200];
    std::snprintf(cells, sizeof cells,
                  "<tr><td>%lld</td><td>%.2f</td><td>%.6f</td><td>%.2f</td><td>%.4f</td>"
                  "<td>%lld</td><td>%lld</td></tr>\n",
                  static_cast<long long>(row.step), row.metrics.noise, row.metrics.mse,
                  row.metrics.psnr, row.metrics.ssim, static_cast<long long>(row.metrics.images),
                  static_cast<long long>(row.metrics.dead_channels));
    html << cells;
  }
  html << "</table>\n<p>Dead ReLU channels (0 for every clean test image) at step " << step
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

std::string EvalReport::write_grids(Denoiser& model, std::int64_t step) {
  const torch::Device device = device_of(model);
  const torch::Tensor clean = one_digit_per_class(config_.data).to(device);
  const NoiseType type = config_.noise_type;
  std::ostringstream html;
  for (std::size_t level = 0; level < config_.eval_noise.size(); ++level) {
    NoiseSource noise(static_cast<std::uint64_t>(config_.seed), static_cast<int>(level),
                      kGridNoiseStream, type, device);
    const torch::Tensor noisy = noise.corrupt(clean, config_.eval_noise[level]);
    const torch::Tensor cells = torch::stack({clean, noisy, model.forward(noisy)}).squeeze(2);
    const std::string name =
        "grid_" + name_of(config_.noise_type) + "_" + level_text(config_.eval_noise[level]) + ".png";
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

void EvalReport::write_code_layer(Denoiser& model) {
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

void EvalReport::write_tables() {
  std::ostringstream csv;
  csv << "step,noise_type,noise,mse,psnr,ssim,images,dead_channels\n";
  std::vector<std::int64_t> steps, images, dead;
  std::vector<double> noise, mse, psnr, ssim;
  for (const Row& row : history_) {
    csv << row.step << "," << name_of(config_.noise_type) << "," << json_number(row.metrics.noise) << ","
        << json_number(row.metrics.mse) << "," << json_number(row.metrics.psnr) << ","
        << json_number(row.metrics.ssim) << "," << row.metrics.images << ","
        << row.metrics.dead_channels << "\n";
    dead.push_back(row.metrics.dead_channels);
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
  file.write_attribute("/", "noise_type", name_of(config_.noise_type));
  const std::vector<std::uint8_t> bytes = file.image();
  file.close();
  write_file_durably(path, bytes);
}

}  // namespace dae
