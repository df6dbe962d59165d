#include "option_docs.hpp"

namespace adx::cli {

std::string option_doc(const std::string& detector, const std::string& key) {
  // An ensemble's "<member>.<key>" options are the member's own.
  const auto first_dot = key.find('.');
  if (detector == "ensemble" && first_dot != std::string::npos) {
    const std::string member = key.substr(0, first_dot);
    if (member != "threshold" && member != "runtime") return option_doc(member, key.substr(first_dot + 1));
  }
  const auto dot = key.rfind('.');
  const std::string field = dot == std::string::npos ? key : key.substr(dot + 1);
  const std::string own = "adx/detectors/" + detector + "/" + detector + ".hpp";
  // Best first: the detector's own header (for its own top-level fields), then a shared header
  // (core, train, threshold, components, the Detector base), then any other detector's.
  auto rank = [&](const std::string& header) {
    if (header == own) return dot == std::string::npos ? 0 : 1;
    const bool other_detector = header.rfind("adx/detectors/", 0) == 0 && header != "adx/detectors/detector.hpp" &&
                                header.rfind("adx/detectors/components/", 0) != 0;
    return other_detector ? 2 : 1;
  };
  const char* best = nullptr;
  int best_rank = 3;
  for (const auto& d : option_docs()) {
    if (field != d.field) continue;
    const int r = rank(d.header);
    if (r < best_rank) best = d.doc, best_rank = r;
  }
  return best ? best : "";
}

}  // namespace adx::cli
