// Writes the seed corpus of every fuzz target: small valid files of each format.
//   fuzz_seeds DIR   -> DIR/npy, DIR/idx, DIR/csv, DIR/image, DIR/state_dict, DIR/model_file
#include "../test_helpers.hpp"
#include "../torch_archive.hpp"

#include <adx/adx.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_seeds DIR\n";
    return 2;
  }
  const fs::path root = argv[1];
  for (const char* sub : {"npy", "idx", "csv", "image", "state_dict", "model_file"}) fs::create_directories(root / sub);
  torch::manual_seed(0);

  adx::save_npy((root / "npy" / "f32.npy").string(), torch::randn({3, 4}));
  adx::save_npy((root / "npy" / "f64.npy").string(), torch::randn({5}, torch::kFloat64));
  adx::save_npy((root / "npy" / "u8.npy").string(), torch::randint(0, 255, {2, 2, 3}, torch::kUInt8));

  std::string idx{'\0', '\0', '\x08', '\x03'};
  for (int d : {2, 2, 3}) idx += std::string{'\0', '\0', '\0', static_cast<char>(d)};
  for (int i = 0; i < 12; ++i) idx += static_cast<char>(i);
  adx::test::write_bytes((root / "idx" / "u8.idx").string(), idx);

  adx::test::write_bytes((root / "csv" / "table.csv").string(), "a,b,c\n1,2,3\n4.5,-6,7e3\n");
  adx::test::write_bytes((root / "csv" / "series.csv").string(), "time,value,label\n2024-01-01T00:00:00Z,1.5,0\n2024-01-01T00:01:00Z,,1\n"
                                     "2024-01-01T00:02:00Z,2.5,0\n");
  adx::test::write_bytes((root / "csv" / "edges.csv").string(), "src,dst,weight\na,b,1.0\nb,c,0.5\n\"c\",a,2\n");

  adx::write_png((root / "image" / "rgb.png").string(), torch::rand({3, 8, 8}));
  adx::write_png((root / "image" / "gray.png").string(), torch::rand({1, 5, 7}));

  const std::vector<float> storage(16, 1.0f);
  int n = 0;
  for (const auto& pickle : {adx::test::Pickle().tensor("w", 16, 0, {4, 4}, {4, 1}).done(),
                             adx::test::Pickle().tensor("a", 16, 2, {3}, {2}).tensor("b", 16, 0, {2, 8}, {1, 2}).done()})
    adx::test::write_bytes((root / "state_dict" / ("pickle" + std::to_string(n++))).string(), pickle);

  // Model files of a few kinds, each raw and with an even first byte (the target then
  // restores the magic and the checksum, so mutations reach the body).
  const auto tabular = adx::Data::tabular(torch::randn({32, 3}));
  const auto series = adx::Data::series(torch::randn({80, 2}), adx::Windows{16, 4});
  const std::vector<std::pair<std::string, adx::Data>> models{
      {"autoencoder", tabular}, {"vae", tabular}, {"deep_svdd", tabular}, {"lstm_autoencoder", series}};
  for (const auto& [name, data] : models) {
    auto detector = adx::make_detector(name, {{"train.epochs", "1"}, {"runtime.threads", "1"}});
    detector->fit(data);
    const auto path = root / "model_file" / (name + ".adx");
    detector->save(path.string());
    auto bytes = adx::test::read_bytes(path.string());
    bytes[0] = 'B';
    adx::test::write_bytes((root / "model_file" / (name + ".even")).string(), bytes);
  }
  std::cout << "seeds written to " << root << "\n";
  return 0;
}
