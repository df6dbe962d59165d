// Series from CSV and NPY files: named columns, date-time stamps, labels, and gaps
// that are either an error naming the cell or filled by interpolation.
#include <adx/core/error.hpp>
#include <adx/data/formats/loaders.hpp>

#include "csv_lines.hpp"

#include <torch/types.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>

namespace adx {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool is_gap(const std::string& cell) {
  return cell.empty() || cell == "nan" || cell == "NaN" || cell == "NAN" || cell == "NA" || cell == "null";
}

std::optional<double> parse_number(const std::string& cell) {
  const char* begin = cell.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  if (end == begin || *end != '\0') return std::nullopt;
  return v;
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// Column `name` among the header cells; OptionError listing them when absent.
size_t column_index(const std::vector<std::string>& header, const std::string& name, const std::string& path,
                    const char* role) {
  for (size_t c = 0; c < header.size(); ++c)
    if (header[c] == name) return c;
  throw OptionError(fmt::format("CSV '{}' has no {} column '{}'; its columns are: {}", path, role, name,
                                fmt::join(header, ", ")));
}

// Fills NaN cells of each column of a T x D double matrix, or names the first one.
int64_t fill_gaps(std::vector<double>& values, int64_t rows, int64_t cols, bool interpolate,
                  const std::vector<std::string>& names, const std::string& path,
                  const std::vector<int64_t>& line_of_row) {
  int64_t filled = 0;
  for (int64_t c = 0; c < cols; ++c) {
    auto at = [&](int64_t r) -> double& { return values[static_cast<size_t>(r * cols + c)]; };
    int64_t previous = -1;
    for (int64_t r = 0; r <= rows; ++r) {
      if (r < rows && std::isnan(at(r))) {
        ADX_CHECK_AS(ValueError, interpolate, "'{}' row {}{} column '{}': missing value; set interpolate_gaps to fill gaps",
                     path, r, line_of_row.empty() ? std::string() : fmt::format(" (line {})", line_of_row[static_cast<size_t>(r)]),
                     names[static_cast<size_t>(c)]);
        continue;
      }
      // Rows previous+1 .. r-1 are a gap between two known values (or an end).
      if (r - previous > 1) {
        ADX_CHECK_AS(ValueError, previous >= 0 || r < rows, "'{}' column '{}' has no values at all", path,
                     names[static_cast<size_t>(c)]);
        for (int64_t g = previous + 1; g < r; ++g) {
          if (previous < 0) at(g) = at(r);
          else if (r >= rows) at(g) = at(previous);
          else at(g) = at(previous) + (at(r) - at(previous)) * static_cast<double>(g - previous) /
                                          static_cast<double>(r - previous);
          ++filled;
        }
      }
      previous = r;
    }
  }
  return filled;
}

at::Tensor to_float_tensor(const std::vector<double>& values, int64_t rows, int64_t cols) {
  return torch::tensor(values, torch::kFloat64).reshape({rows, cols}).to(torch::kFloat32);
}

}  // namespace

bool parse_iso8601(const std::string& text, double& seconds) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, consumed = 0;
  double s = 0.0;
  const char* p = text.c_str();
  if (std::sscanf(p, "%4d-%2d-%2d%n", &y, &mo, &d, &consumed) != 3 || consumed != 10) return false;
  p += consumed;
  if (*p == 'T' || *p == ' ') {
    ++p;
    if (std::sscanf(p, "%2d:%2d%n", &h, &mi, &consumed) != 2) return false;
    p += consumed;
    if (*p == ':') {
      char* end = nullptr;
      s = std::strtod(p + 1, &end);
      if (end == p + 1) return false;
      p = end;
    }
  }
  double offset = 0.0;
  if (*p == 'Z') {
    ++p;
  } else if (*p == '+' || *p == '-') {
    int oh = 0, om = 0;
    const int sign = *p == '-' ? -1 : 1;
    if (std::sscanf(p + 1, "%2d:%2d%n", &oh, &om, &consumed) != 2) return false;
    p += 1 + consumed;
    offset = sign * (oh * 3600.0 + om * 60.0);
  }
  if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s < 0 || s >= 61) return false;
  seconds = static_cast<double>(days_from_civil(y, mo, d)) * 86400.0 + h * 3600.0 + mi * 60.0 + s - offset;
  return true;
}

namespace {

// A CSV's rows as read: `columns` values per row, a timestamp, a label (if any) and the file's line.
struct SeriesRows {
  int64_t columns;
  std::vector<double>& values;
  std::vector<double>& stamps;
  std::vector<int64_t>& labels;
  std::vector<int64_t>& lines;

  int64_t size() const { return static_cast<int64_t>(stamps.size()); }
  // Keeps the rows `kept` (in that order).
  void select(const std::vector<int64_t>& kept) {
    std::vector<double> new_values, new_stamps;
    std::vector<int64_t> new_labels, new_lines;
    for (const int64_t r : kept) {
      new_values.insert(new_values.end(), values.begin() + r * columns, values.begin() + (r + 1) * columns);
      new_stamps.push_back(stamps[static_cast<size_t>(r)]);
      if (!labels.empty()) new_labels.push_back(labels[static_cast<size_t>(r)]);
      new_lines.push_back(lines[static_cast<size_t>(r)]);
    }
    values.swap(new_values), stamps.swap(new_stamps), labels.swap(new_labels), lines.swap(new_lines);
  }
};

// Brings the rows to strictly increasing timestamps as the options say, or names the first row that
// breaks the order and the option that would get past it.
void order_by_time(SeriesRows& rows, const SeriesCsvOptions& o, const std::string& path) {
  ADX_CHECK_AS(OptionError, o.backward_timestamps == "error" || o.backward_timestamps == "drop" || o.backward_timestamps == "sort",
               "backward_timestamps must be error, drop or sort, got '{}'", o.backward_timestamps);
  ADX_CHECK_AS(OptionError,
               o.duplicate_timestamps == "error" || o.duplicate_timestamps == "first" ||
                   o.duplicate_timestamps == "last" || o.duplicate_timestamps == "mean",
               "duplicate_timestamps must be error, first, last or mean, got '{}'", o.duplicate_timestamps);
  const auto& t = rows.stamps;
  std::vector<int64_t> order;
  double latest = -std::numeric_limits<double>::infinity();
  for (int64_t r = 0; r < rows.size(); ++r) {
    const double stamp = t[static_cast<size_t>(r)];
    if (stamp < latest) {
      ADX_CHECK_AS(ValueError, o.backward_timestamps != "error",
                   "CSV '{}' line {}: timestamp {} is earlier than the one before it ({}); set backward_timestamps "
                   "to drop (skip such rows) or sort (put rows in time order)",
                   path, rows.lines[static_cast<size_t>(r)], stamp, latest);
      if (o.backward_timestamps == "drop") continue;
    }
    latest = std::max(latest, stamp);
    order.push_back(r);
  }
  if (o.backward_timestamps == "sort")
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return t[static_cast<size_t>(a)] < t[static_cast<size_t>(b)]; });
  if (static_cast<int64_t>(order.size()) != rows.size() || !std::is_sorted(order.begin(), order.end())) rows.select(order);

  // Runs of equal timestamps become one row.
  std::vector<int64_t> kept;
  const auto& stamps = rows.stamps;
  for (int64_t begin = 0; begin < rows.size();) {
    int64_t end = begin + 1;
    while (end < rows.size() && stamps[static_cast<size_t>(end)] == stamps[static_cast<size_t>(begin)]) ++end;
    if (end - begin > 1) {
      ADX_CHECK_AS(ValueError, o.duplicate_timestamps != "error",
                   "CSV '{}' line {}: timestamp {} repeats the previous row's; set duplicate_timestamps to first, "
                   "last or mean to keep one row per timestamp",
                   path, rows.lines[static_cast<size_t>(begin + 1)], stamps[static_cast<size_t>(begin)]);
      if (o.duplicate_timestamps == "mean") {
        for (int64_t c = 0; c < rows.columns; ++c) {
          double sum = 0;
          int64_t count = 0;
          for (int64_t r = begin; r < end; ++r) {
            const double v = rows.values[static_cast<size_t>(r * rows.columns + c)];
            if (!std::isnan(v)) sum += v, ++count;
          }
          rows.values[static_cast<size_t>(begin * rows.columns + c)] = count > 0 ? sum / static_cast<double>(count) : kNaN;
        }
        if (!rows.labels.empty())
          for (int64_t r = begin + 1; r < end; ++r)
            rows.labels[static_cast<size_t>(begin)] |= rows.labels[static_cast<size_t>(r)];
      }
    }
    kept.push_back(o.duplicate_timestamps == "last" ? end - 1 : begin);
    begin = end;
  }
  if (static_cast<int64_t>(kept.size()) != rows.size()) rows.select(kept);
}

}  // namespace

LoadedSeries load_series_csv(const std::string& path, const SeriesCsvOptions& options) {
  csv::LineReader reader(path, "CSV file", options.delimiter);
  std::vector<std::string> header, cells;
  ADX_CHECK_AS(IoError, reader.next(header), "CSV file '{}' is empty", path);

  const std::optional<size_t> time_col =
      options.timestamp_column.empty() ? std::nullopt
                                       : std::optional(column_index(header, options.timestamp_column, path, "timestamp"));
  const std::optional<size_t> label_col =
      options.label_column.empty() ? std::nullopt
                                   : std::optional(column_index(header, options.label_column, path, "label"));
  LoadedSeries out;
  std::vector<size_t> value_cols;
  if (options.value_columns.empty()) {
    for (size_t c = 0; c < header.size(); ++c)
      if (c != time_col && c != label_col) value_cols.push_back(c);
  } else {
    for (const auto& name : options.value_columns) value_cols.push_back(column_index(header, name, path, "value"));
  }
  ADX_CHECK_AS(OptionError, !value_cols.empty(), "CSV '{}' has no value columns besides timestamp and label", path);
  for (size_t c : value_cols) out.columns.push_back(header[c]);

  const int64_t cols = static_cast<int64_t>(value_cols.size());
  std::vector<double> values, stamps;
  std::vector<int64_t> labels, line_of_row;
  while (reader.next(cells)) {
    const int64_t line_no = reader.line_number();
    ADX_CHECK_AS(IoError, cells.size() == header.size(), "CSV '{}' line {}: {} cells, but the header has {}", path,
                 line_no, cells.size(), header.size());
    for (size_t c : value_cols) {
      if (is_gap(cells[c])) {
        values.push_back(kNaN);
        continue;
      }
      const auto v = parse_number(cells[c]);
      ADX_CHECK_AS(IoError, v.has_value() && std::isfinite(*v), "CSV '{}' line {} column '{}': '{}' is not a finite number",
                   path, line_no, header[c], cells[c]);
      values.push_back(*v);
    }
    if (time_col) {
      const auto& cell = cells[*time_col];
      double t = 0.0;
      const auto numeric = parse_number(cell);
      ADX_CHECK_AS(IoError, numeric.has_value() || parse_iso8601(cell, t),
                   "CSV '{}' line {} column '{}': '{}' is neither a number nor an ISO 8601 date-time", path, line_no,
                   header[*time_col], cell);
      if (numeric) t = *numeric;
      stamps.push_back(t);
    }
    if (label_col) {
      const auto v = parse_number(cells[*label_col]);
      ADX_CHECK_AS(IoError, v.has_value() && std::isfinite(*v), "CSV '{}' line {} column '{}': label '{}' is not a number",
                   path, line_no, header[*label_col], cells[*label_col]);
      labels.push_back(*v != 0 ? 1 : 0);
    }
    line_of_row.push_back(line_no);
  }
  ADX_CHECK_AS(IoError, !line_of_row.empty(), "CSV file '{}' has a header but no data rows", path);
  if (time_col) {
    SeriesRows table{cols, values, stamps, labels, line_of_row};
    order_by_time(table, options, path);
  }
  const int64_t rows = static_cast<int64_t>(line_of_row.size());
  out.filled_gaps = fill_gaps(values, rows, cols, options.interpolate_gaps, out.columns, path, line_of_row);
  out.values = to_float_tensor(values, rows, cols);
  if (time_col) out.timestamps = torch::tensor(stamps, torch::kFloat64);
  if (label_col) out.labels = torch::tensor(labels, torch::kLong);
  return out;
}

LoadedSeries load_series_npy(const std::string& path, bool interpolate_gaps) {
  auto array = load_npy(path);
  ADX_CHECK_AS(ShapeError, array.dim() == 1 || array.dim() == 2, "'{}': a series is T or T x D, got shape {}", path,
               c10::str(array.sizes()));
  if (array.dim() == 1) array = array.unsqueeze(1);
  array = array.to(torch::kFloat64).contiguous();
  const int64_t rows = array.size(0), cols = array.size(1);
  ADX_CHECK_AS(ShapeError, rows > 0 && cols > 0, "'{}': the series is empty (shape {})", path,
               c10::str(array.sizes()));
  std::vector<double> values(array.data_ptr<double>(), array.data_ptr<double>() + rows * cols);
  for (size_t i = 0; i < values.size(); ++i)
    ADX_CHECK_AS(ValueError, !std::isinf(values[i]), "'{}' row {} column {}: infinite value", path,
                 static_cast<int64_t>(i) / cols, static_cast<int64_t>(i) % cols);
  LoadedSeries out;
  for (int64_t c = 0; c < cols; ++c) out.columns.push_back(fmt::format("{}", c));
  out.filled_gaps = fill_gaps(values, rows, cols, interpolate_gaps, out.columns, path, {});
  out.values = to_float_tensor(values, rows, cols);
  return out;
}

}  // namespace adx
