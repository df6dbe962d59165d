#pragma once
// What the kinds' readers share: a numeric array from an NPY, IDX or CSV file, and the checks that turn
// one into a table or an image stack.
#include <adx/data/data.hpp>

#include <string>
#include <vector>

namespace adx::kind_reading {

bool ends_with(const std::string& text, const std::string& suffix);
/// An NPY, IDX (the MNIST family, .gz or not) or CSV file's values; with `csv_otherwise`, a file of
/// any other name is read as CSV, else it is an IoError. `columns` receives a CSV header's names.
at::Tensor read_array(const std::string& path, bool csv_otherwise, std::vector<std::string>* columns);
/// Rows N x D of `path` as a float table; another rank is a ShapeError naming the file.
at::Tensor table_values(at::Tensor x, const std::string& path);
/// An image stack N x H x W (grey) or N x C x H x W; uint8 pixels become [0, 1]. Another rank is a
/// ShapeError naming the file.
at::Tensor image_values(at::Tensor x, const std::string& path);

}  // namespace adx::kind_reading
