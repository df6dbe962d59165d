#pragma once
// An input kind of a user's own, whole in this file: N x 1 x L spectra whose items are the rows, read from
// text files of one spectrum per line. One line makes it known to adx:
//   adx::register_input_kind(std::make_shared<adx::test::SpectraKind>());
#include <adx/base.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace adx::test {

class SpectraKind final : public RowKind {
 public:
  std::string name() const override { return "spectra"; }
  void validate(const Data& data, const char* what) const override {
    validate_values(data, what, 3, "N x 1 x L");
    check_finite(data.x, what, "spectrum");
  }
  Preprocess default_preprocess() const override { return Preprocess::Standardize; }
  /// One spectrum per line, values separated by white space; blank lines are skipped.
  Data read(const std::string& path, const ReadOptions& /*options*/, std::vector<std::string>* /*columns*/) const override {
    std::ifstream in(path);
    ADX_CHECK_AS(IoError, in.good(), "cannot open the spectra file {}", path);
    std::vector<float> values;
    int64_t rows = 0, width = 0;
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::vector<float> row;
      for (float v; fields >> v;) row.push_back(v);
      if (row.empty()) continue;
      ADX_CHECK_AS(ShapeError, rows == 0 || static_cast<int64_t>(row.size()) == width,
                   "{}: spectrum {} has {} values, the first has {}", path, rows + 1, row.size(), width);
      width = static_cast<int64_t>(row.size());
      values.insert(values.end(), row.begin(), row.end());
      ++rows;
    }
    ADX_CHECK_AS(IoError, rows > 0, "{} holds no spectra", path);
    return items_from(torch::tensor(values).reshape({rows, 1, width}));
  }
};

}  // namespace adx::test
