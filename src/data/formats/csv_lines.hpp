#pragma once
// The one CSV line reader behind every table adx loads (plain tables, series,
// edge lists), so they agree on byte-order marks, line ends, quotes and blanks.
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace adx::csv {

/// Splits one line at `delimiter` outside double quotes; cells are trimmed of spaces, tabs and quotes.
std::vector<std::string> split_cells(const std::string& line, char delimiter);

/// Yields the cells of each non-blank line of a regular file. A UTF-8 byte-order
/// mark and CR line ends are dropped; lines starting with `comment` (when not 0) are skipped.
class LineReader {
 public:
  LineReader(const std::string& path, const std::string& what, char delimiter, char comment = '\0');
  /// The next line's cells; false at the end of the file.
  bool next(std::vector<std::string>& cells);
  /// 1-based number of the line `next` returned last.
  int64_t line_number() const { return line_number_; }

 private:
  std::ifstream in_;
  char delimiter_, comment_;
  int64_t line_number_ = 0;
};

}  // namespace adx::csv
