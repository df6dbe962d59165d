#pragma once
// The documentation of every option field, taken from the headers at build time
// (cmake/option_docs.cmake), for `adx list <detector>`.
#include <string>
#include <vector>

namespace adx::cli {

struct OptionDoc {
  const char* header;  ///< e.g. "adx/detectors/vae/vae.hpp"
  const char* field;   ///< the field's name (the last part of an option key)
  const char* doc;
};

const std::vector<OptionDoc>& option_docs();

/// The documentation of option `key` ("train.epochs") of `detector`: the field as the detector's
/// own header documents it, else the only or the first documentation of a field of that name.
std::string option_doc(const std::string& detector, const std::string& key);

}  // namespace adx::cli
