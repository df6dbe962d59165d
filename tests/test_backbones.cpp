// Backbones: adx's ResNet-18 and Wide-ResNet-50-2 load torchvision's weights
// (OrderedDict, dict and TorchScript files written by export_torchvision.py)
// and reproduce torchvision's layer outputs, as does the Vision Transformer;
// mismatched files are clear errors. ViT patch tokens feed PatchCore and PaDiM.
#include "test_helpers.hpp"

#include <adx/io/state_dict.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>
#include <adx/nn/resnet.hpp>
#include <adx/nn/vit.hpp>

#include <catch2/catch.hpp>

#include <fstream>

using adx::Data;

namespace {

std::string exported(const std::string& file) {
  const char* dir = std::getenv("ADX_TORCHVISION_DIR");
  return std::string(dir ? dir : "torchvision_export") + "/" + file;
}

void check_parity(adx::nn::ResNet net, const adx::TensorMap& expected) {
  torch::NoGradGuard no_grad;
  const auto& x = expected.at("input");
  const auto features = net->features(x, {"conv1", "layer1", "layer2", "layer3", "layer4"});
  for (const char* layer : {"conv1", "layer1", "layer2", "layer3", "layer4"}) {
    INFO(layer);
    const auto& want = expected.at(layer);
    REQUIRE(features.at(layer).sizes() == want.sizes());
    REQUIRE(net->channels(layer) == want.size(1));
    REQUIRE(x.size(2) / net->stride(layer) == want.size(2));
    // Relative to the layer's largest value: the export and this test may run different BLAS kernels
    // (OpenBLAS picks them per CPU), which round differently.
    const double diff = (features.at(layer) - want).abs().max().item<double>();
    const double scale = std::max(1.0, want.abs().max().item<double>());
    INFO("max |adx - torchvision| = " << diff << ", largest value " << scale);
    REQUIRE(diff < 1e-5 * scale);
  }
  const auto& logits = expected.at("logits");
  REQUIRE((net->forward(x) - logits).abs().max().item<double>() <
          1e-5 * std::max(1.0, logits.abs().max().item<double>()));
}

}  // namespace

TEST_CASE("ResNet-18 matches torchvision from every weight format", "[backbones]") {
  const auto expected = adx::load_state_dict(exported("resnet18_expected.pt"));
  for (const char* file : {"resnet18_ordered.pt", "resnet18_dict.pt", "resnet18_script.pt"}) {
    INFO(file);
    check_parity(adx::nn::load_resnet(adx::nn::ResNetArch::ResNet18, exported(file)), expected);
  }
}

TEST_CASE("Wide-ResNet-50-2 matches torchvision", "[backbones]") {
  check_parity(adx::nn::load_resnet(adx::nn::ResNetArch::WideResNet50_2, exported("wide_resnet50_2_ordered.pt")),
               adx::load_state_dict(exported("wide_resnet50_2_expected.pt")));
}

TEST_CASE("weights for another architecture or a broken file are clear errors", "[backbones][errors]") {
  // ResNet-18 weights into a Wide-ResNet-50-2: the first mismatch is named with both shapes.
  REQUIRE_THROWS_WITH(adx::nn::load_resnet(adx::nn::ResNetArch::WideResNet50_2, exported("resnet18_ordered.pt")),
                      Catch::Contains("layer1.0.conv1.weight") && Catch::Contains("[64, 64, 3, 3]") &&
                          Catch::Contains("[128, 64, 1, 1]"));
  // A file that lacks a parameter.
  auto state = adx::load_state_dict(exported("resnet18_dict.pt"));
  state.erase("layer3.1.bn2.running_var");
  adx::nn::ResNet net(adx::nn::ResNetArch::ResNet18);
  REQUIRE_THROWS_WITH(adx::load_into(*net, state, "resnet18"), Catch::Contains("lack layer3.1.bn2.running_var"));
  // An extra entry.
  state = adx::load_state_dict(exported("resnet18_dict.pt"));
  state["head.weight"] = torch::zeros({3});
  REQUIRE_THROWS_WITH(adx::load_into(*net, state, "resnet18"), Catch::Contains("head.weight"));
  // Not a PyTorch archive, a truncated archive, a missing file.
  const auto text = adx::test::temp_path("not_weights.pt");
  std::ofstream(text) << "hello";
  REQUIRE_THROWS_WITH(adx::load_state_dict(text), Catch::Contains("not a PyTorch zip archive"));
  std::ifstream in(exported("resnet18_dict.pt"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto cut = adx::test::temp_path("truncated.pt");
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  REQUIRE_THROWS_AS(adx::load_state_dict(cut), adx::IoError);
  REQUIRE_THROWS_WITH(adx::load_state_dict("/nonexistent/w.pt"), Catch::Contains("cannot open weight file"));
  REQUIRE_THROWS_WITH(adx::nn::resnet_arch_from_name("resnet19"), Catch::Contains("wide_resnet50_2"));
}

namespace {

double max_difference(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a - b).abs().max().item<double>();
}

}  // namespace

TEST_CASE("ViT-B/16 matches torchvision at its own size and with interpolated position embeddings",
          "[backbones][vit]") {
  const auto expected = adx::load_state_dict(exported("vit_b_16_expected.pt"));
  auto vit = adx::nn::load_vit("vit_b_16", exported("vit_b_16_ordered.pt"));
  torch::NoGradGuard no_grad;
  std::vector<std::string> blocks;
  for (int i = 1; i <= 12; ++i) blocks.push_back("block" + std::to_string(i));
  for (const std::string suffix : {"", "_112"}) {
    const auto& x = expected.at("input" + suffix);
    const auto features = vit->features(x, blocks);
    for (const auto& block : blocks) {
      INFO(block << suffix);
      const double diff = max_difference(features.at(block), expected.at(block + suffix));
      INFO("max |adx - torchvision| = " << diff);
      REQUIRE(diff < 1e-3);
    }
    REQUIRE(max_difference(vit->forward(x), expected.at("logits" + suffix)) < 1e-4);
  }
  REQUIRE(max_difference(vit->position_embedding(7, 7), expected.at("pos_embedding_112")) < 1e-5);
  REQUIRE(vit->channels("block3") == 768);
  REQUIRE(vit->stride("block12") == 16);
  // Only as deep as asked: block 2 alone equals block 2 of the full run.
  REQUIRE(torch::equal(vit->features(expected.at("input_112"), {"block2"}).at("block2"),
                       vit->features(expected.at("input_112"), blocks).at("block2")));
}

TEST_CASE("ViT misuse is a clear error", "[backbones][vit][errors]") {
  adx::nn::VisionTransformer vit(adx::nn::vit_config("vit_b_32"));
  REQUIRE_THROWS_WITH(vit->features(torch::rand({1, 3, 64, 64}), {"block13"}), Catch::Contains("block1 .. block12"));
  REQUIRE_THROWS_WITH(vit->features(torch::rand({1, 3, 64, 64}), {"layer2"}), Catch::Contains("no layer 'layer2'"));
  REQUIRE_THROWS_WITH(vit->features(torch::rand({1, 3, 48, 64}), {"block1"}), Catch::Contains("multiples of 32"));
  REQUIRE_THROWS_WITH(adx::nn::vit_config("vit_s_16"), Catch::Contains("vit_b_16"));
  REQUIRE_THROWS_WITH(adx::nn::make_backbone("vit_tiny"), Catch::Contains("resnet18") && Catch::Contains("vit_l_32"));
  // ViT-B/16 weights into ViT-B/32: the patch projection's shapes differ.
  REQUIRE_THROWS_WITH(adx::nn::load_vit("vit_b_32", exported("vit_b_16_ordered.pt")),
                      Catch::Contains("conv_proj.weight") && Catch::Contains("[768, 3, 32, 32]"));
  REQUIRE_THROWS_AS(adx::nn::load_backbone("vit_b_16", exported("resnet18_ordered.pt")), adx::IoError);
}

TEST_CASE("ViT patch tokens feed PatchCore's memory bank and PaDiM's Gaussians", "[backbones][vit][detectors]") {
  // Random ViT-B/16 weights on the easy striped images at 64 px (a 4 x 4 token grid); the bright blobs
  // cover one or two tokens.
  const auto easy = adx::test::easy_images_at(64, 40, 20, 12);
  for (const std::string name : {"patchcore", "padim"}) {
    INFO(name);
    auto detector = adx::make_detector(name, {{"backbone", "vit_b_16"}, {"runtime.seed", "3"}});
    detector->fit(Data::images(easy.train));
    const auto scores = detector->score(Data::images(easy.test));
    const double auroc = adx::metrics::roc_auc(easy.labels, scores.to_vector());
    INFO("image AUROC " << auroc);
    REQUIRE(auroc > 0.9);
    REQUIRE(scores.pixel_map.sizes() == torch::IntArrayRef({easy.test.size(0), 1, 64, 64}));
    // The model file holds ViT-B/16's 86 M weights (344 MB): one round trip is enough.
    if (name == "patchcore") adx::test::require_identical_reload(*detector, easy.test, scores);
  }
  // The default layers of a ViT are its blocks 6 and 9; torchvision weights load through the options.
  adx::Patchcore loaded(adx::from_option_map<adx::PatchcoreOptions>(
      {{"backbone", "vit_b_16"}, {"weights", exported("vit_b_16_ordered.pt")}, {"coreset_ratio", "0.5"}}));
  REQUIRE(loaded.options().layers() == "block6,block9");
  loaded.fit(Data::images(easy.train.slice(0, 0, 8)));
  REQUIRE(loaded.patch_features(Data::images(easy.test.slice(0, 0, 2))).sizes() ==
          torch::IntArrayRef({2, 16, 2 * 768}));
  REQUIRE_THROWS_WITH(adx::make_detector("patchcore", {{"backbone", "vit_b_16"}, {"layers", "layer2"}})
                          ->fit(Data::images(easy.train.slice(0, 0, 4))),
                      Catch::Contains("block1 .. block12"));
}
