#include "dae/plot.hpp"

#include <mgl2/mgl.h>

#include <algorithm>
#include <cmath>

#include "dae/error.hpp"
#include "dae/files.hpp"
#include "dae/image_io.hpp"

namespace dae {

namespace {

mglData column(const std::vector<std::pair<std::int64_t, double>>& points, bool second) {
  mglData data(static_cast<long>(std::max<std::size_t>(points.size(), 1)));
  for (std::size_t i = 0; i < points.size(); ++i)
    data.a[i] = second ? points[i].second : static_cast<double>(points[i].first);
  return data;
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
  // MathGL's own WritePNG uses libpng's default error handler, which aborts the process on a
  // write error (a full disk): take its pixels and write the file ourselves.
  const unsigned char* rgb = graph.GetRGB();
  if (rgb == nullptr) throw Error(path + ": MathGL could not render the plot");
  write_file_durably(path, encode_png(graph.GetWidth(), graph.GetHeight(), 3, rgb));
}

}  // namespace dae
