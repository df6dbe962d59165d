// Hostile files and arguments: every case is an adx::Error subclass with a clear
// message, never a crash, a foreign exception or gigabytes reserved for a lie.
#include "test_helpers.hpp"
#include "torch_archive.hpp"

#include <adx/data/formats/edge_lists.hpp>
#include <adx/detectors/isolation_forest/isolation_forest.hpp>
#include <adx/io/state_dict.hpp>

#include <catch2/catch.hpp>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

using adx::test::read_bytes;
using adx::test::temp_path;
using adx::test::write_bytes;

namespace {

// An NPY v1 file with the given header text and payload.
std::string npy_bytes(const std::string& header, const std::string& payload = "") {
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  adx::test::put_le<uint16_t>(out, static_cast<uint16_t>(header.size()));
  return out + header + payload;
}

std::string npy_header(const std::string& descr, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }\n";
}

// The model file format written out independently of adx's writer (see model_file.hpp).
struct RawTensor {
  std::string name;
  uint8_t dtype_code = 1;  // float32
  std::vector<int64_t> shape;
  std::string bytes;
};

std::string raw_model_file(const std::string& type, const std::map<std::string, std::string>& options,
                           const std::vector<RawTensor>& tensors, uint32_t version = 2,
                           const std::map<std::string, std::string>& metadata = {}) {
  auto put_string = [](std::string& out, const std::string& s) {
    adx::test::put_le<uint32_t>(out, static_cast<uint32_t>(s.size()));
    out += s;
  };
  std::string body;
  put_string(body, type);
  auto put_map = [&](const std::map<std::string, std::string>& map) {
    adx::test::put_le<uint32_t>(body, static_cast<uint32_t>(map.size()));
    for (const auto& [k, v] : map) {
      put_string(body, k);
      put_string(body, v);
    }
  };
  put_map(options);
  if (version >= 2) put_map(metadata);
  adx::test::put_le<uint32_t>(body, static_cast<uint32_t>(tensors.size()));
  for (const auto& t : tensors) {
    put_string(body, t.name);
    adx::test::put_le<uint8_t>(body, t.dtype_code);
    adx::test::put_le<uint8_t>(body, static_cast<uint8_t>(t.shape.size()));
    for (auto d : t.shape) adx::test::put_le<int64_t>(body, d);
    adx::test::put_le<uint64_t>(body, t.bytes.size());
    body += t.bytes;
  }
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : body) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  std::string out = "ADXMODEL";
  adx::test::put_le<uint32_t>(out, version);
  adx::test::put_le<uint64_t>(out, body.size());
  out += body;
  adx::test::put_le<uint64_t>(out, hash);
  return out;
}

RawTensor raw(const std::string& name, const torch::Tensor& tensor) {
  static const std::map<c10::ScalarType, uint8_t> codes{{torch::kFloat, 1}, {torch::kDouble, 2}, {torch::kLong, 9}};
  const auto t = tensor.contiguous();
  RawTensor r{name, codes.at(t.scalar_type()), t.sizes().vec(), {}};
  r.bytes.assign(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return r;
}

std::vector<RawTensor> raw_tensors(const adx::TensorMap& tensors) {
  std::vector<RawTensor> out;
  for (const auto& [name, t] : tensors) out.push_back(raw(name, t));
  return out;
}

// A small fitted autoencoder as a model file: its type, options and tensors.
adx::ModelFile fitted_autoencoder_file() {
  auto detector = adx::make_detector("autoencoder", {{"train.epochs", "1"}, {"hidden", "8"}, {"runtime.threads", "1"}});
  detector->fit(adx::Data::tabular(torch::randn({64, 4})));
  const auto path = temp_path("hostile_ae.adx");
  detector->save(path);
  return adx::read_model_file(path);
}

}  // namespace

TEST_CASE("NPY headers that are too long or malformed are IoErrors, never a crash", "[hostile][npy]") {
  const auto path = temp_path("hostile.npy");
  auto expect = [&](const std::string& bytes, const std::string& message) {
    write_bytes(path, bytes);
    REQUIRE_THROWS_AS(adx::load_npy(path), adx::IoError);
    REQUIRE_THROWS_WITH(adx::load_npy(path), Catch::Contains(message));
  };
  // 40,000 characters once overflowed the stack of a regex-based parser.
  expect(npy_bytes(npy_header(std::string(40000, 'f'), "2,")), "exceeds NumPy's limit of 10000");
  std::string long_shape;
  for (int i = 0; i < 20000; ++i) long_shape += "1,";
  expect(npy_bytes(npy_header("<f4", long_shape)), "exceeds NumPy's limit");
  expect(npy_bytes(npy_header("<f4", "abc, 4")), "not a tuple of non-negative integers");
  expect(npy_bytes(npy_header("<f4", "123456789012345678901, 4")), "more than 18 digits");
  expect(npy_bytes(npy_header("<f4", "-1, -1")), "not a tuple of non-negative integers");
  expect(npy_bytes(npy_header("<f4", "4294967296, 4294967296, 16")), "overflows");
  expect(npy_bytes(npy_header("<f4", "2, 3"), std::string(20, '\0')), "needs 24");
  expect(npy_bytes("{'descr': '<f4', 'shape': (2,), }"), "no 'fortran_order'");
  expect(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, }"), "not terminated");
  // A header just under the limit with a valid dtype and shape still loads.
  std::string padded = npy_header("<f4", "2,");
  padded.insert(padded.size() - 1, std::string(9000, ' '));
  std::string payload(8, '\0');
  const float values[2] = {1.5f, -2.0f};
  std::memcpy(payload.data(), values, 8);
  write_bytes(path, npy_bytes(padded, payload));
  const auto loaded = adx::load_npy(path);
  REQUIRE(loaded.sizes() == torch::IntArrayRef({2}));
  REQUIRE(loaded[1].item<float>() == -2.0f);
}

TEST_CASE("IDX dimensions whose product overflows are IoErrors", "[hostile][idx]") {
  const auto path = temp_path("hostile.idx");
  std::string bytes{'\0', '\0', '\x08', '\x04'};
  for (int d = 0; d < 4; ++d) bytes += std::string{'\0', '\x01', '\0', '\0'};  // 65536 each
  write_bytes(path, bytes);
  REQUIRE_THROWS_WITH(adx::load_idx(path), Catch::Contains("overflows"));
  bytes = std::string{'\0', '\0', '\x08', '\x03'};
  for (int d = 0; d < 3; ++d) bytes += std::string{'\0', '\0', '\x03', '\xe8'};  // 1000 each, no payload
  write_bytes(path, bytes);
  REQUIRE_THROWS_WITH(adx::load_idx(path), Catch::Contains("has 0 bytes") && Catch::Contains("needs 1000000000"));
}

TEST_CASE("directories and devices are refused by every loader", "[hostile][files]") {
  namespace fs = std::filesystem;
  const auto dir = temp_path("hostile_dir");
  fs::create_directories(dir);
  for (const std::string& path : {dir, std::string("/dev/zero")}) {
    INFO(path);
    REQUIRE_THROWS_WITH(adx::load_npy(path), Catch::Contains("not a regular file"));
    REQUIRE_THROWS_WITH(adx::load_idx(path), Catch::Contains("not a regular file"));
    REQUIRE_THROWS_WITH(adx::load_csv(path), Catch::Contains("not a regular file"));
    REQUIRE_THROWS_WITH(adx::load_series_csv(path), Catch::Contains("not a regular file"));
    REQUIRE_THROWS_WITH(adx::graph::load_edge_list(path), Catch::Contains("not a regular file"));
    REQUIRE_THROWS_WITH(adx::read_model_file(path), Catch::Contains("not a regular file"));
    REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains("not a regular file"));
    REQUIRE_THROWS_WITH(adx::read_image(path), Catch::Contains("not a regular file"));
    REQUIRE_THROWS_AS(adx::load_state_dict(path), adx::IoError);
  }
}

TEST_CASE("weights files: tensor views are read exactly, and views outside their storage are refused",
          "[hostile][weights]") {
  const auto path = temp_path("hostile_weights.pt");
  const std::vector<float> storage{0, 1, 2, 3, 4, 5};
  // Reference values: a 2 x 3 tensor, its transpose as a strided view, and an offset row.
  adx::test::write_torch_archive(path,
                      adx::test::Pickle()
                          .tensor("plain", 6, 0, {2, 3}, {3, 1})
                          .tensor("transposed", 6, 0, {3, 2}, {1, 3})
                          .tensor("row", 6, 3, {3}, {1})
                          .done(),
                      storage);
  const auto state = adx::load_state_dict(path);
  REQUIRE(adx::test::to_doubles(state.at("plain")) == std::vector<double>{0, 1, 2, 3, 4, 5});
  REQUIRE(adx::test::to_doubles(state.at("transposed")) == std::vector<double>{0, 3, 1, 4, 2, 5});
  REQUIRE(adx::test::to_doubles(state.at("row")) == std::vector<double>{3, 4, 5});

  auto expect = [&](int64_t offset, const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides,
                    const std::string& message) {
    adx::test::write_torch_archive(path, adx::test::Pickle().tensor("w", 6, offset, sizes, strides).done(), storage);
    REQUIRE_THROWS_AS(adx::load_state_dict(path), adx::IoError);
    REQUIRE_THROWS_WITH(adx::load_state_dict(path), Catch::Contains(message));
  };
  // 24 bytes of storage must not grow into 1.6 GB through zero strides.
  expect(0, {20000, 20000}, {0, 0}, "does not fit its storage");
  expect(0, {3, 3}, {3, 1}, "does not fit its storage");
  expect(int64_t{1} << 40, {1}, {1}, "offset");
  expect(0, {-2, 3}, {3, 1}, "negative size");
  expect(0, {2, 3}, {-3, 1}, "negative");
  expect(0, {int64_t{1} << 62, 4}, {1, 1}, "overflows");
  expect(0, {2, 3}, {3}, "sizes and");
  // A storage that claims more elements than its record holds.
  adx::test::write_torch_archive(path, adx::test::Pickle().tensor("w", int64_t{1} << 62, 0, {1}, {1}).done(), storage);
  REQUIRE_THROWS_AS(adx::load_state_dict(path), adx::IoError);
}

TEST_CASE("model files that lie about sizes are IoErrors before any large allocation", "[hostile][model]") {
  const auto file = fitted_autoencoder_file();
  const auto path = temp_path("hostile_model.adx");
  auto write = [&](const adx::ModelFile& m) { adx::write_model_file(path, m); };

  SECTION("an item shape of 25,000,000 in a small file") {
    auto m = file;
    m.tensors["meta.item_shape"] = torch::tensor({int64_t{25000000}});
    write(m);
    REQUIRE_THROWS_AS(adx::load(path), adx::IoError);
    REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains("asks for more than"));
  }
  SECTION("options asking for absurd layer sizes") {
    for (const auto& [key, value] : std::map<std::string, std::string>{{"hidden", "4000000000"},
                                                                       {"bottleneck", "1000000000"}}) {
      auto m = file;
      m.options[key] = value;
      write(m);
      INFO(key);
      REQUIRE_THROWS_AS(adx::load(path), adx::IoError);
      REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains("asks for more than"));
    }
  }
  SECTION("weights holding NaN") {
    auto m = file;
    for (auto& [name, t] : m.tensors)
      if (name.rfind("model.", 0) == 0 && t.is_floating_point()) {
        t = t.clone();
        t.view(-1)[0] = NAN;
        break;
      }
    write(m);
    REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains("non-finite"));
  }
  SECTION("malformed records") {
    auto m = file;
    m.tensors["meta.threshold"] = torch::tensor({1.0});
    write(m);
    REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains("malformed threshold"));
    m = file;
    m.tensors["meta.item_shape"] = torch::tensor({int64_t{4}, int64_t{-3}});
    write(m);
    REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains("dimension below 1"));
    // Format 1 stored the input kind as a number.
    auto tensors = raw_tensors(file.tensors);
    tensors.push_back(raw("meta.modality", torch::tensor({0.0, 1.0, 2.0})));
    write_bytes(path, raw_model_file(file.type, file.options, tensors, /*version=*/1));
    REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains("malformed modality"));
  }
  SECTION("tensor records with negative, overflowing or over-ranked shapes") {
    auto expect = [&](RawTensor bad, const std::string& message) {
      auto tensors = raw_tensors(file.tensors);
      tensors.push_back(std::move(bad));
      write_bytes(path, raw_model_file(file.type, file.options, tensors, 2, file.metadata));
      REQUIRE_THROWS_AS(adx::load(path), adx::IoError);
      REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains(message));
    };
    expect({"bad", 1, {-1, 4}, ""}, "negative dimension");
    expect({"bad", 1, {int64_t{1} << 40, int64_t{1} << 40}, ""}, "overflows");
    expect({"bad", 1, std::vector<int64_t>(40, 1), "abcd"}, "rank 40");
    expect({"bad", 1, {1000000}, "abcd"}, "does not match its 4 bytes");
    expect({"bad", 77, {1}, "abcd"}, "unknown dtype code 77");
    // The independent writer agrees with adx's reader on a well-formed file.
    write_bytes(path, raw_model_file(file.type, file.options, raw_tensors(file.tensors), 2, file.metadata));
    REQUIRE(adx::load(path)->fitted());
  }
}

TEST_CASE("a PatchCore model with a malformed coverage record is an IoError", "[hostile][model]") {
  auto detector = adx::make_detector("patchcore", {{"backbone", "resnet18"}, {"runtime.threads", "2"}});
  detector->fit(adx::Data::images(torch::rand({4, 3, 32, 32})));
  const auto path = temp_path("hostile_patchcore.adx");
  detector->save(path);
  auto m = adx::read_model_file(path);
  m.tensors["patchcore.coverage_radius"] = torch::ones({3});
  adx::write_model_file(path, m);
  REQUIRE_THROWS_WITH(adx::load(path), Catch::Contains("malformed patchcore coverage"));
}

TEST_CASE("a CSV that starts with a byte-order mark keeps its first row", "[hostile][csv]") {
  const auto path = temp_path("bom.csv");
  write_bytes(path, "\xEF\xBB\xBF" "1,2\n3,4\n");
  const auto x = adx::load_csv(path);
  REQUIRE(adx::test::to_doubles(x) == std::vector<double>{1, 2, 3, 4});
  write_bytes(path, "\xEF\xBB\xBF" "time,value\n0,1.5\n1,2.5\n");
  adx::SeriesCsvOptions series_options;
  series_options.timestamp_column = "time";
  const auto series = adx::load_series_csv(path, series_options);
  REQUIRE(series.columns == std::vector<std::string>{"value"});
}

TEST_CASE("bad API values are refused before any work", "[hostile][options]") {
  const auto x = torch::randn({64, 4});
  auto refused = [](const adx::OptionMap& options, const std::string& message) {
    INFO(options.begin()->first << "=" << options.begin()->second);
    REQUIRE_THROWS_AS(adx::make_detector("autoencoder", options), adx::OptionError);
    REQUIRE_THROWS_WITH(adx::make_detector("autoencoder", options), Catch::Contains(message));
  };
  refused({{"runtime.threads", "4294967298"}}, "[0, 4096]");
  refused({{"runtime.validation_fraction", "-0.5"}}, "validation_fraction");
  refused({{"runtime.validation_fraction", "nan"}}, "finite");
  refused({{"threshold.k", "nan"}}, "finite");
  refused({{"runtime.device", "cpu:1"}}, "the CPU is one device");
  refused({{"threshold.contamination", "1.5"}}, "contamination");
  refused({{"train.lr", "-1"}}, "lr");
  refused({{"runtime.score_batch_size", "0"}}, "score_batch_size");

  // The same values set through the typed API are refused when the detector is made.
  adx::IsolationForestOptions options;
  options.threshold().policy(adx::ThresholdPolicy::Contamination).contamination(1.5);
  REQUIRE_THROWS_WITH(adx::IsolationForest(options), Catch::Contains("option 'threshold.contamination'"));
  adx::IsolationForestOptions nan_options;
  nan_options.threshold().k(NAN);
  REQUIRE_THROWS_WITH(adx::IsolationForest(nan_options), Catch::Contains("threshold.k"));
  adx::IsolationForestOptions fraction;
  fraction.runtime().validation_fraction(NAN);
  REQUIRE_THROWS_AS(adx::IsolationForest(fraction), adx::OptionError);

  // Empty items and wrongly ranked images are shape errors, not LibTorch errors.
  auto detector = adx::make_detector("autoencoder", {{"train.epochs", "1"}});
  REQUIRE_THROWS_WITH(detector->fit(adx::Data::tabular(torch::empty({10, 0}))), Catch::Contains("hold no values"));
  REQUIRE_THROWS_AS(adx::fit_image_size(torch::rand({3, 8, 8}), {16, 0}), adx::ShapeError);

  // A network too large to allocate is an OptionError from fit, not std::bad_alloc.
  auto too_big = adx::make_detector("autoencoder", {{"hidden", "4000000000"}, {"train.epochs", "1"}});
  adx::test::AddressSpaceCap cap(int64_t{1} << 30);
  REQUIRE_THROWS_AS(too_big->fit(adx::Data::tabular(x)), adx::OptionError);
}

TEST_CASE("every truncation and every single-byte flip of a model file is an IoError", "[hostile][model]") {
  const auto file = fitted_autoencoder_file();
  const auto path = temp_path("corpus_source.adx");
  adx::write_model_file(path, file);
  const std::string good = read_bytes(path);
  REQUIRE(adx::load(path)->fitted());
  const auto bad = temp_path("corpus_case.adx");
  int64_t refused = 0;
  for (size_t length = 0; length < good.size(); ++length) {
    write_bytes(bad, good.substr(0, length));
    INFO("truncated to " << length << " of " << good.size() << " bytes");
    REQUIRE_THROWS_AS(adx::load(bad), adx::IoError);
    ++refused;
  }
  for (size_t at = 0; at < good.size(); ++at) {
    auto flipped = good;
    flipped[at] = static_cast<char>(flipped[at] ^ 0xA5);
    write_bytes(bad, flipped);
    INFO("byte " << at << " flipped");
    REQUIRE_THROWS_AS(adx::load(bad), adx::IoError);
    ++refused;
  }
  REQUIRE(refused == 2 * static_cast<int64_t>(good.size()));
}

TEST_CASE("images: a PNG whose data inflates without end, unknown formats and huge headers are IoErrors",
          "[hostile][image]") {
  // Found by fuzzing: 115 bytes that made the PNG decoder ask for 2 GiB.
  REQUIRE_THROWS_AS(adx::read_image(std::string(ADX_TEST_DATA_DIR) + "/png_inflate_bomb.png"), adx::IoError);
  REQUIRE_THROWS_WITH(adx::read_image(std::string(ADX_TEST_DATA_DIR) + "/png_inflate_bomb.png"), Catch::Contains("PNG"));
  const auto path = temp_path("hostile_image.png");
  // A 1 x 1 PNG whose image data inflates to 1 MB: refused from its header's size.
  auto chunk = [](const std::string& type, const std::string& data) {
    std::string out;
    for (int shift : {24, 16, 8, 0}) out += static_cast<char>((data.size() >> shift) & 0xff);
    return out + type + data + std::string(4, '\0');  // the CRC is not what is tested
  };
  std::string ihdr{'\0', '\0', '\0', '\1', '\0', '\0', '\0', '\1', '\x08', '\0', '\0', '\0', '\0'};
  std::vector<Bytef> packed(compressBound(1 << 20));
  uLongf packed_size = packed.size();
  const std::vector<Bytef> zeros(1 << 20, 0);
  REQUIRE(compress(packed.data(), &packed_size, zeros.data(), zeros.size()) == Z_OK);
  write_bytes(path, std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) +
                        chunk("IDAT", std::string(reinterpret_cast<const char*>(packed.data()), packed_size)) +
                        chunk("IEND", ""));
  REQUIRE_THROWS_WITH(adx::read_image(path), Catch::Contains("inflates past"));
  write_bytes(path, "GIF89a not a format adx decodes");
  REQUIRE_THROWS_WITH(adx::read_image(path), Catch::Contains("not a PNG, JPEG or BMP"));
  // A valid image still round-trips.
  const auto image = torch::rand({3, 5, 7});
  adx::write_png(path, image);
  REQUIRE(adx::read_image(path).sizes() == torch::IntArrayRef({3, 5, 7}));
}
