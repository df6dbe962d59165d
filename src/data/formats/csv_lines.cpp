#include "csv_lines.hpp"

#include <adx/core/error.hpp>
#include <adx/io/files.hpp>

#include <cerrno>
#include <cstring>

namespace adx::csv {
namespace {

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t\"");
  if (a == std::string::npos) return "";
  const auto b = s.find_last_not_of(" \t\"");
  return s.substr(a, b - a + 1);
}

}  // namespace

std::vector<std::string> split_cells(const std::string& line, char delimiter) {
  std::vector<std::string> cells;
  std::string cell;
  bool quoted = false;
  for (char ch : line) {
    if (ch == '"') quoted = !quoted;
    if (ch == delimiter && !quoted) {
      cells.push_back(trim(cell));
      cell.clear();
    } else {
      cell += ch;
    }
  }
  cells.push_back(trim(cell));
  return cells;
}

LineReader::LineReader(const std::string& path, const std::string& what, char delimiter, char comment)
    : delimiter_(delimiter), comment_(comment) {
  regular_file_size(path, what);
  in_.open(path, std::ios::binary);
  ADX_CHECK_AS(IoError, in_.good(), "cannot open {} '{}': {}", what, path, std::strerror(errno));
}

bool LineReader::next(std::vector<std::string>& cells) {
  std::string line;
  while (std::getline(in_, line)) {
    ++line_number_;
    // Spreadsheet exports often begin with a UTF-8 byte-order mark; it is not part of the first cell.
    if (line_number_ == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    if (comment_ != '\0' && line[first] == comment_) continue;
    cells = split_cells(line, delimiter_);
    return true;
  }
  return false;
}

}  // namespace adx::csv
