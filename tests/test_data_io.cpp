// Loaders, transforms, validation and the model file format.
#include "test_helpers.hpp"

#include <catch2/catch.hpp>
#include <zlib.h>

#include <fstream>

using adx::test::read_bytes;
using adx::test::temp_path;
using adx::test::write_bytes;

namespace {

// A 2 x 2 x 3 uint8 IDX image file with values 0..11.
std::string tiny_idx() {
  std::string b{'\0', '\0', '\x08', '\x03'};
  for (int d : {2, 2, 3}) b += std::string{'\0', '\0', '\0', static_cast<char>(d)};
  for (int i = 0; i < 12; ++i) b += static_cast<char>(i);
  return b;
}

}  // namespace

TEST_CASE("IDX files load plain and gzipped", "[loaders]") {
  const auto plain = temp_path("tiny.idx");
  write_bytes(plain, tiny_idx());
  const auto gz = temp_path("tiny.idx.gz");
  {
    gzFile f = gzopen(gz.c_str(), "wb");
    const auto b = tiny_idx();
    gzwrite(f, b.data(), static_cast<unsigned>(b.size()));
    gzclose(f);
  }
  for (const auto& path : {plain, gz}) {
    const auto t = adx::load_idx(path);
    REQUIRE(t.sizes() == torch::IntArrayRef({2, 2, 3}));
    REQUIRE(t.scalar_type() == torch::kByte);
    REQUIRE(t.flatten()[11].item<int>() == 11);
  }
  auto truncated = tiny_idx();
  truncated.pop_back();
  write_bytes(plain, truncated);
  REQUIRE_THROWS_WITH(adx::load_idx(plain), Catch::Contains("payload has 11 bytes"));
  REQUIRE_THROWS_AS(adx::load_idx(temp_path("missing.idx")), adx::IoError);
}

TEST_CASE("Fashion-MNIST loads from the Debian package", "[loaders]") {
  const auto test = adx::load_mnist_split(adx::kFashionMnistDir, "t10k");
  REQUIRE(test.images.sizes() == torch::IntArrayRef({10000, 1, 28, 28}));
  REQUIRE(test.labels.size(0) == 10000);
  REQUIRE(test.images.max().item<float>() <= 1.0f);
  REQUIRE((test.labels == 3).sum().item<int64_t>() == 1000);
  REQUIRE_THROWS_WITH(adx::load_mnist_split(temp_path("nowhere"), "train"), Catch::Contains("nowhere"));
}

TEST_CASE("CSV loads with and without header and names bad cells", "[loaders]") {
  const auto path = temp_path("data.csv");
  write_bytes(path, "a,b,c\n1,2,3\n4.5,-5,6e1\n");
  auto t = adx::load_csv(path);
  REQUIRE(t.sizes() == torch::IntArrayRef({2, 3}));
  REQUIRE(t[1][2].item<float>() == 60.0f);
  write_bytes(path, "1;2\n3;4\n");
  t = adx::load_csv(path, {';', 0});
  REQUIRE(t.sizes() == torch::IntArrayRef({2, 2}));
  write_bytes(path, "x,y\n1,2\n3,abc\n");
  REQUIRE_THROWS_WITH(adx::load_csv(path), Catch::Contains("line 3 column 2") && Catch::Contains("'abc'"));
  write_bytes(path, "1,2\n3\n");
  REQUIRE_THROWS_WITH(adx::load_csv(path), Catch::Contains("line 2: 1 columns, expected 2"));
  write_bytes(path, "");
  REQUIRE_THROWS_WITH(adx::load_csv(path), Catch::Contains("no data rows"));
  REQUIRE_THROWS_AS(adx::load_csv(temp_path("missing.csv")), adx::IoError);
}

TEST_CASE("NPY round trip for float32, float64 and uint8", "[loaders]") {
  const auto path = temp_path("array.npy");
  for (auto dtype : {torch::kFloat32, torch::kFloat64, torch::kByte}) {
    const auto x = (torch::arange(24) % 200).reshape({2, 3, 4}).to(dtype);
    adx::save_npy(path, x);
    const auto back = adx::load_npy(path);
    REQUIRE(back.scalar_type() == dtype);
    REQUIRE(torch::equal(back, x));
  }
  // A header written by numpy itself: np.save of np.arange(3, dtype='<f8').
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size()) + '\0' + header;
  for (double v : {0.0, 1.0, 2.0}) bytes.append(reinterpret_cast<const char*>(&v), 8);
  write_bytes(path, bytes);
  REQUIRE(adx::load_npy(path)[2].item<double>() == 2.0);
  write_bytes(path, bytes.substr(0, bytes.size() - 3));
  REQUIRE_THROWS_WITH(adx::load_npy(path), Catch::Contains("payload has 21 bytes"));
  write_bytes(path, "not numpy at all");
  REQUIRE_THROWS_WITH(adx::load_npy(path), Catch::Contains("not an NPY file"));
}

TEST_CASE("transforms are fitted on training data and reapplied", "[transforms]") {
  const auto x = torch::tensor({{1.0f, 10.0f, 5.0f}, {3.0f, 30.0f, 5.0f}});
  adx::Transform standardize(adx::Preprocess::Standardize);
  standardize.fit(x);
  const auto s = standardize.apply(x);
  REQUIRE(s[0][0].item<float>() == Approx(-1.0f));
  REQUIRE(s[1][1].item<float>() == Approx(1.0f));
  REQUIRE(s[0][2].item<float>() == Approx(0.0f));  // constant feature stays finite
  adx::Transform minmax(adx::Preprocess::MinMax);
  minmax.fit(x);
  REQUIRE(minmax.apply(torch::tensor({{2.0f, 20.0f, 5.0f}}))[0][1].item<float>() == Approx(0.5f));
  // One range for every value (video frames): min 1, max 30, so 5 -> 4/29 and 20 -> 19/29 in every column,
  // where the per-feature range gives column 2 (constant 5) its own scale.
  adx::Transform global(adx::Preprocess::GlobalMinMax);
  global.fit(x);
  const auto scaled = global.apply(torch::tensor({{5.0f, 20.0f, 5.0f}, {31.0f, 1.0f, 30.0f}}));
  REQUIRE(scaled[0][0].item<float>() == Approx(4.0f / 29.0f));
  REQUIRE(scaled[0][1].item<float>() == Approx(19.0f / 29.0f));
  REQUIRE(scaled[0][2].item<float>() == Approx(4.0f / 29.0f));
  REQUIRE(scaled[1][0].item<float>() == Approx(30.0f / 29.0f));  // beyond the training range, by the same scale
  REQUIRE(scaled[1][1].item<float>() == Approx(0.0f).margin(1e-6));
  REQUIRE(scaled[1][2].item<float>() == Approx(1.0f));
  // GCN (L1): [1, 2, 3] -> centered [-1, 0, 1], mean |.| = 2/3 -> [-1.5, 0, 1.5].
  const auto g = adx::global_contrast_normalize(torch::tensor({{1.0f, 2.0f, 3.0f}}));
  REQUIRE(g[0][0].item<float>() == Approx(-1.5f));
  REQUIRE(g[0][2].item<float>() == Approx(1.5f));
  adx::Transform gcn(adx::Preprocess::GcnMinMax);
  gcn.fit(torch::tensor({{1.0f, 2.0f, 3.0f}, {0.0f, 0.0f, 9.0f}}));
  const auto applied = gcn.apply(torch::tensor({{1.0f, 2.0f, 3.0f}, {0.0f, 0.0f, 9.0f}}));
  REQUIRE(applied.min().item<float>() == Approx(0.0f).margin(1e-6));
  REQUIRE(applied.max().item<float>() == Approx(1.0f));
  adx::Transform unfitted(adx::Preprocess::MinMax);
  REQUIRE_THROWS_AS(unfitted.apply(x), adx::NotFittedError);
}

TEST_CASE("validation names NaN, empty and misshapen input", "[validate][errors]") {
  auto x = torch::ones({5, 3});
  x[3][1] = NAN;
  REQUIRE_THROWS_WITH(adx::validate(adx::Data::tabular(x), "input"),
                      Catch::Contains("non-finite") && Catch::Contains("first at item 3"));
  REQUIRE_THROWS_WITH(adx::validate(adx::Data::tabular(torch::empty({0, 3})), "input"), Catch::Contains("empty"));
  REQUIRE_THROWS_WITH(adx::validate(adx::Data::images(torch::ones({2, 28, 28})), "input"),
                      Catch::Contains("N x C x H x W") && Catch::Contains("[2 x 28 x 28]"));
  REQUIRE_THROWS_WITH(adx::validate(adx::Data::tabular(torch::ones({2, 3}, torch::kInt)), "input"),
                      Catch::Contains("floating-point"));
  REQUIRE_THROWS_WITH(adx::validate(adx::Data::images(torch::ones({2, 1, 8, 8}), torch::ones({2, 1, 4, 4})), "input"),
                      Catch::Contains("masks"));
}

TEST_CASE("model files round-trip and reject foreign, corrupt, truncated and newer files", "[io][errors]") {
  adx::ModelFile m;
  m.type = "something";
  m.options = {{"a", "1"}, {"b.c", "x,y"}};
  m.tensors["w"] = torch::randn({3, 4});
  m.tensors["n"] = torch::tensor({1, 2, 3}, torch::kLong);
  const auto path = temp_path("model.adx");
  adx::write_model_file(path, m);
  const auto back = adx::read_model_file(path);
  REQUIRE(back.type == "something");
  REQUIRE(back.options == m.options);
  REQUIRE(torch::equal(back.tensors.at("w"), m.tensors.at("w")));
  REQUIRE(torch::equal(back.tensors.at("n"), m.tensors.at("n")));

  const auto good = read_bytes(path);
  const auto bad = temp_path("bad.adx");
  write_bytes(bad, "just some text that is not a model");
  REQUIRE_THROWS_WITH(adx::read_model_file(bad), Catch::Contains("not an adx model file"));
  write_bytes(bad, good.substr(0, good.size() - 17));
  REQUIRE_THROWS_WITH(adx::read_model_file(bad), Catch::Contains("truncated"));
  auto flipped = good;
  flipped[good.size() / 2] ^= 0x5a;
  write_bytes(bad, flipped);
  REQUIRE_THROWS_WITH(adx::read_model_file(bad), Catch::Contains("checksum"));
  auto newer = good;
  newer[8] = 99;
  write_bytes(bad, newer);
  REQUIRE_THROWS_WITH(adx::read_model_file(bad), Catch::Contains("format version 99"));
  REQUIRE_THROWS_WITH(adx::read_model_file(temp_path("absent.adx")), Catch::Contains("cannot open"));
  // A failed write leaves no partial file behind at the destination.
  REQUIRE_THROWS_AS(adx::write_model_file(temp_path("no/such/dir/model.adx"), m), adx::IoError);
}
