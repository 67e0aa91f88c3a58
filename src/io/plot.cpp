#include "dae/io/plot.hpp"

#include <mgl2/mgl.h>

#include <algorithm>
#include <cmath>

#include "dae/core/error.hpp"
#include "dae/core/files.hpp"
#include "dae/io/image_io.hpp"

namespace dae {

namespace {

mglData column(const std::vector<std::pair<std::int64_t, double>>& points, bool second) {
  mglData data(static_cast<long>(std::max<std::size_t>(points.size(), 1)));
  for (std::size_t i = 0; i < points.size(); ++i)
    data.a[i] = second ? points[i].second : static_cast<double>(points[i].first);
  return data;
}

// MathGL's own WritePNG uses libpng's default error handler, which aborts the process on a
// write error (a full disk): take its pixels and write the file ourselves.
void write_graph(mglGraph& graph, const std::string& path) {
  const unsigned char* rgb = graph.GetRGB();
  if (rgb == nullptr) throw Error(path + ": MathGL could not render the plot");
  write_file_durably(path, encode_png(graph.GetWidth(), graph.GetHeight(), 3, rgb));
}

}  // namespace

void plot_loss(const std::string& path,
               const std::vector<std::pair<std::int64_t, double>>& train_loss,
               const std::vector<std::pair<std::int64_t, double>>& test_mse) {
  double x_max = 1, y_min = 1e30, y_max = 0;
  for (const auto* series : {&train_loss, &test_mse})
    for (const auto& [step, value] : *series) {
      x_max = std::max(x_max, static_cast<double>(step));
      if (value > 0) {
        y_min = std::min(y_min, value);
        y_max = std::max(y_max, value);
      }
    }
  if (y_max <= 0) y_min = 1e-3, y_max = 1;
  // Whole decades around the data keep the log axis readable.
  y_min = std::pow(10.0, std::floor(std::log10(y_min)));
  y_max = std::pow(10.0, std::ceil(std::log10(y_max)));
  if (y_max <= y_min) y_max = y_min * 10;

  mglGraph graph(0, 900, 500);
  graph.SetRanges(0, x_max, y_min, y_max);
  graph.SetFunc("", "lg(y)");
  graph.Title("training loss and test MSE");
  graph.Axis();
  graph.Grid("xy", "h:");
  graph.Label('x', "step", 0);
  graph.Label('y', "MSE", 0);
  if (!train_loss.empty()) {
    graph.Plot(column(train_loss, false), column(train_loss, true), "b-2");
    graph.AddLegend("training loss (mean over ranks)", "b-2");
  }
  if (!test_mse.empty()) {
    graph.Plot(column(test_mse, false), column(test_mse, true), "r o#");
    graph.AddLegend("clean test MSE", "r o#");
  }
  graph.Legend(1);
  write_graph(graph, path);
}

void plot_sweep(const std::string& path, const std::vector<SweepCurve>& curves,
                double train_noise) {
  double x_max = std::max(train_noise, 0.1), mse_min = 1e30, mse_max = 0, psnr_max = 1;
  for (const SweepCurve& curve : curves) {
    for (double level : curve.noise) x_max = std::max(x_max, level);
    for (double mse : curve.mse)
      if (mse > 0) mse_min = std::min(mse_min, mse), mse_max = std::max(mse_max, mse);
    for (double psnr : curve.psnr) psnr_max = std::max(psnr_max, psnr);
  }
  if (mse_max <= 0) mse_min = 1e-3, mse_max = 1;
  mse_min = std::pow(10.0, std::floor(std::log10(mse_min)));
  mse_max = std::pow(10.0, std::ceil(std::log10(mse_max)));
  if (mse_max <= mse_min) mse_max = mse_min * 10;

  mglGraph graph(0, 1500, 450);
  const char* titles[3] = {"test MSE", "PSNR (dB)", "SSIM"};
  for (int panel = 0; panel < 3; ++panel) {
    graph.SubPlot(3, 1, panel);
    graph.Title(titles[panel]);
    const double y_min = panel == 0 ? mse_min : 0;
    const double y_max = panel == 0 ? mse_max : panel == 1 ? std::ceil(psnr_max / 5) * 5 : 1;
    graph.SetFunc("", "");  // linear first: the previous panel's log axis rejects y_min = 0
    graph.SetRanges(0, x_max, y_min, y_max);
    if (panel == 0) graph.SetFunc("", "lg(y)");
    graph.Axis();
    graph.Grid("xy", "h:");
    graph.Label('x', "noise level", 0);
    // The level the model was trained at: how it degrades away from it is the point.
    graph.Line(mglPoint(train_noise, y_min), mglPoint(train_noise, y_max), "k|");
    for (std::size_t i = 0; i < curves.size(); ++i) {
      const SweepCurve& curve = curves[i];
      const std::vector<double>& values =
          panel == 0 ? curve.mse : panel == 1 ? curve.psnr : curve.ssim;
      mglData x(static_cast<long>(curve.noise.size())), y(static_cast<long>(values.size()));
      for (std::size_t k = 0; k < values.size(); ++k) x.a[k] = curve.noise[k], y.a[k] = values[k];
      const bool last = i + 1 == curves.size();
      const std::string style = last ? "r-o3" : "b-o1";
      graph.Plot(x, y, style.c_str());
      if (panel == 0 && (last || i == 0)) graph.AddLegend(curve.label.c_str(), style.c_str());
    }
    if (panel == 0) graph.Legend(1);
  }
  write_graph(graph, path);
}

}  // namespace dae
