// Backbones: adx's ResNet-18 and Wide-ResNet-50-2 load torchvision's weights
// (OrderedDict, dict and TorchScript files written by export_torchvision.py)
// and reproduce torchvision's layer outputs; mismatched files are clear errors.
#include "test_helpers.hpp"

#include <adx/io/state_dict.hpp>
#include <adx/nn/resnet.hpp>

#include <catch2/catch.hpp>

#include <fstream>

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
    const double diff = (features.at(layer) - want).abs().max().item<double>();
    INFO("max |adx - torchvision| = " << diff);
    REQUIRE(diff < 1e-4);
  }
  REQUIRE((net->forward(x) - expected.at("logits")).abs().max().item<double>() < 1e-4);
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
