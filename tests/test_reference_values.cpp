// Reference values: each score on a tiny fixed input (a fixed memory, fixed weights)
// computed independently in the test, by hand-written loops in double precision or
// with Eigen, and compared with what adx computes.
#include "test_helpers.hpp"

#include <adx/detectors/anogan/anogan.hpp>
#include <adx/detectors/f_anogan/f_anogan.hpp>
#include <adx/detectors/ganomaly/ganomaly.hpp>
#include <adx/detectors/components/algorithms/coreset.hpp>
#include <adx/detectors/components/algorithms/gaussian_density.hpp>
#include <adx/detectors/skip_ganomaly/skip_ganomaly.hpp>
#include <adx/detectors/rotation/rotation.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>
#include <adx/detectors/spade/spade.hpp>
#include <adx/detectors/vae/vae.hpp>

#include <Eigen/Dense>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

using Vec = std::vector<double>;

namespace {

double l2(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s);
}

torch::Tensor tensor_of(const std::vector<Vec>& rows) {
  auto t = torch::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) t[i][j] = rows[i][j];
  return t;
}

}  // namespace

TEST_CASE("PatchCore: patch distances and the re-weighted image score (eq. 7) by hand", "[reference][patchcore]") {
  const std::vector<Vec> bank{{0, 0}, {1, 0}, {0, 1}, {3, 3}, {4, 3}};
  const std::vector<std::vector<Vec>> images{{{0.1, 0.1}, {1, 0.2}, {0.2, 0.9}}, {{3.4, 3.5}, {0, 0}, {1, 1.1}}};
  const int64_t k = 3;
  auto patches = torch::empty({2, 3, 2});
  for (int i = 0; i < 2; ++i) patches[i] = tensor_of(images[static_cast<size_t>(i)]);
  const auto got = adx::patchcore_scores(patches, tensor_of(bank), k);

  for (size_t i = 0; i < images.size(); ++i) {
    // s*: the largest nearest-memory distance over the image's patches; m_test that patch; m* its neighbour.
    double s_star = -1;
    size_t worst = 0, star = 0;
    for (size_t p = 0; p < images[i].size(); ++p) {
      size_t nearest = 0;
      for (size_t m = 1; m < bank.size(); ++m)
        if (l2(images[i][p], bank[m]) < l2(images[i][p], bank[nearest])) nearest = m;
      const double d = l2(images[i][p], bank[nearest]);
      REQUIRE(got.patches[static_cast<int64_t>(i)][static_cast<int64_t>(p)].item<double>() == Approx(d).epsilon(1e-5));
      if (d > s_star) s_star = d, worst = p, star = nearest;
    }
    // N_b(m*): the k memory patches nearest to m* (m* itself first).
    std::vector<size_t> order(bank.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return l2(bank[star], bank[a]) < l2(bank[star], bank[b]); });
    double denominator = 0;
    for (int64_t j = 0; j < k; ++j) denominator += std::exp(l2(images[i][worst], bank[order[static_cast<size_t>(j)]]));
    const double weight = 1.0 - std::exp(l2(images[i][worst], bank[star])) / denominator;
    INFO("image " << i << ": s* " << s_star << ", weight " << weight);
    REQUIRE(got.image[static_cast<int64_t>(i)].item<double>() == Approx(weight * s_star).epsilon(1e-5));
  }
}

TEST_CASE("PatchCore left out: each image scored against the memory without its own rows", "[reference][patchcore]") {
  torch::manual_seed(5);
  const int64_t images = 4, patches_per_image = 6, features = 3;
  const auto patches = torch::randn({images, patches_per_image, features});
  // A memory of 10 rows drawn from the images' own patches, as a coreset would keep them.
  const auto rows = torch::tensor({0, 3, 5, 7, 8, 11, 13, 17, 20, 23}, torch::kLong);
  const auto bank = patches.reshape({-1, features}).index_select(0, rows);
  const auto bank_images = rows.div(patches_per_image, "floor");
  const auto got = adx::patchcore_scores(patches, bank, 3, torch::arange(images), bank_images);
  for (int64_t i = 0; i < images; ++i) {
    // The plain score against a bank that never held image i's rows.
    const auto others = torch::nonzero(bank_images != i).flatten();
    const auto expected = adx::patchcore_scores(patches.slice(0, i, i + 1), bank.index_select(0, others), 3);
    REQUIRE(got.image[i].item<double>() == Approx(expected.image[0].item<double>()).epsilon(1e-5));
    REQUIRE(torch::allclose(got.patches[i], expected.patches[0], 1e-5, 1e-5));
  }
  // The grouped nearest-neighbour search against brute force with the own group masked, over many blocks.
  const auto queries = torch::randn({40, features});
  const auto query_groups = torch::randint(0, 4, {40}, torch::kLong);
  const auto bank_groups = torch::randint(0, 4, {30}, torch::kLong);
  const auto memory = torch::randn({30, features});
  torch::Tensor distance, index;
  adx::nearest_neighbours(queries, memory, &distance, &index, /*block_elements=*/300, query_groups, bank_groups);
  // Brute force in float64: the same rows but at float32 near-ties, distances within float32 rounding.
  auto brute = torch::cdist(queries.to(torch::kFloat64), memory.to(torch::kFloat64));
  brute.masked_fill_(query_groups.unsqueeze(1) == bank_groups.unsqueeze(0), std::numeric_limits<double>::infinity());
  REQUIRE((bank_groups.index_select(0, index) != query_groups).all().item<bool>());
  adx::test::require_same_nearest(queries, memory, index, distance, std::get<1>(brute.min(1)), 1e-5);
}

TEST_CASE("PaDiM: Gaussian per position and Mahalanobis distances against Eigen in double", "[reference][padim]") {
  torch::manual_seed(8);
  const int64_t positions = 2, n = 6, d = 3;
  const auto train = torch::randn({positions, n, d});
  const auto test = torch::randn({positions, 4, d}) * 2;
  const double regularization = 0.01;
  const auto gaussian = adx::padim_gaussian(train, regularization);
  const auto got = adx::padim_distances(test, gaussian.mean, gaussian.inverse_covariance);
  const auto t64 = train.to(torch::kFloat64), q64 = test.to(torch::kFloat64);
  for (int64_t p = 0; p < positions; ++p) {
    Eigen::MatrixXd x(n, d);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j) x(i, j) = t64[p][i][j].item<double>();
    const Eigen::RowVectorXd mean = x.colwise().mean();
    const Eigen::MatrixXd centred = x.rowwise() - mean;
    const Eigen::MatrixXd covariance =
        centred.transpose() * centred / static_cast<double>(n - 1) + regularization * Eigen::MatrixXd::Identity(d, d);
    const Eigen::MatrixXd inverse = covariance.inverse();
    for (int64_t i = 0; i < test.size(1); ++i) {
      Eigen::VectorXd delta(d);
      for (int64_t j = 0; j < d; ++j) delta(j) = q64[p][i][j].item<double>() - mean(j);
      const double expected = std::sqrt(delta.dot(inverse * delta));
      REQUIRE(got[p][i].item<double>() == Approx(expected).epsilon(1e-4));
    }
  }
}

TEST_CASE("PaDiM left out: the closed form equals refitting without the image, in double", "[reference][padim]") {
  torch::manual_seed(9);
  const int64_t n = 12, d = 3;
  const double regularization = 0.01;
  const auto train = torch::randn({1, n, d});
  const auto gaussian = adx::padim_gaussian(train, regularization);
  const auto in_sample = adx::padim_distances(train, gaussian.mean, gaussian.inverse_covariance);
  const auto got = adx::padim_left_out_distances(in_sample, n);
  const auto t64 = train.to(torch::kFloat64)[0];
  for (int64_t i = 0; i < n; ++i) {
    // The other n - 1 images' mean and scatter, with the scatter divided by n - 1 (the closed form's
    // normaliser) and by n - 2 (an exact refit).
    Eigen::MatrixXd x(n - 1, d);
    Eigen::VectorXd left(d);
    for (int64_t r = 0, row = 0; r < n; ++r)
      for (int64_t j = 0; j < d; ++j) {
        if (r == i) left(j) = t64[r][j].item<double>();
        else x(row, j) = t64[r][j].item<double>();
        if (j == d - 1 && r != i) ++row;
      }
    const Eigen::RowVectorXd mean = x.colwise().mean();
    const Eigen::MatrixXd centred = x.rowwise() - mean;
    const Eigen::MatrixXd scatter = centred.transpose() * centred;
    const Eigen::MatrixXd identity = Eigen::MatrixXd::Identity(d, d);
    const Eigen::VectorXd delta = left - mean.transpose();
    auto distance = [&](double normaliser) {
      const Eigen::MatrixXd covariance = scatter / normaliser + regularization * identity;
      return std::sqrt(delta.dot(covariance.inverse() * delta));
    };
    INFO("image " << i);
    REQUIRE(got[0][i].item<double>() == Approx(distance(n - 1.0)).epsilon(1e-4));
    // The stated difference from an exact refit: a factor (n - 1) / (n - 2) on the data covariance moves
    // the distance by at most its square root.
    const double exact = distance(n - 2.0), bound = std::sqrt((n - 1.0) / (n - 2.0));
    REQUIRE(got[0][i].item<double>() <= exact * bound * (1 + 1e-4));
    REQUIRE(got[0][i].item<double>() >= exact * (1 - 1e-4));
  }
  REQUIRE_THROWS_AS(adx::padim_left_out_distances(in_sample.slice(1, 0, 2), 2), adx::ValueError);
}

TEST_CASE("SPADE: image kNN score and pixel nearest distances by hand", "[reference][spade]") {
  const std::vector<Vec> train{{0, 0}, {1, 0}, {0, 2}, {5, 5}, {2, 2}, {-1, 0}};
  const std::vector<Vec> test{{0.4, 0.5}, {4, 4}};
  const int64_t k = 3;
  const auto [scores, neighbours] = adx::spade_image_scores(tensor_of(test), tensor_of(train), k);
  for (size_t i = 0; i < test.size(); ++i) {
    Vec distances;
    for (const auto& t : train) distances.push_back(l2(test[i], t));
    std::sort(distances.begin(), distances.end());
    const double expected = (distances[0] + distances[1] + distances[2]) / 3.0;
    REQUIRE(scores[static_cast<int64_t>(i)].item<double>() == Approx(expected).epsilon(1e-6));
    REQUIRE(neighbours[static_cast<int64_t>(i)][0].item<int64_t>() == (i == 0 ? 0 : 3));
  }
  // Left out: training image i scored as a test image is never its own neighbour.
  const auto own = torch::arange(static_cast<int64_t>(train.size()));
  const auto [left_out, left_out_neighbours] = adx::spade_image_scores(tensor_of(train), tensor_of(train), k, own);
  for (size_t i = 0; i < train.size(); ++i) {
    Vec distances;
    for (size_t j = 0; j < train.size(); ++j)
      if (j != i) distances.push_back(l2(train[i], train[j]));
    std::sort(distances.begin(), distances.end());
    INFO("training image " << i);
    REQUIRE(left_out[static_cast<int64_t>(i)].item<double>() ==
            Approx((distances[0] + distances[1] + distances[2]) / 3.0).epsilon(1e-6));
    REQUIRE((left_out_neighbours[static_cast<int64_t>(i)] != static_cast<int64_t>(i)).all().item<bool>());
  }
  // Pixel distances: each test position against every position of every gallery map.
  torch::manual_seed(1);
  const auto map = torch::randn({2, 2, 3});            // C x h x w
  const auto gallery = torch::randn({2, 2, 2, 2});      // k x C x h' x w'
  const auto got = adx::spade_pixel_distances(map, gallery);
  REQUIRE(got.sizes() == torch::IntArrayRef({2, 3}));
  for (int64_t y = 0; y < 2; ++y)
    for (int64_t x = 0; x < 3; ++x) {
      double best = 1e300;
      for (int64_t g = 0; g < 2; ++g)
        for (int64_t gy = 0; gy < 2; ++gy)
          for (int64_t gx = 0; gx < 2; ++gx) {
            double s = 0;
            for (int64_t c = 0; c < 2; ++c) {
              const double diff = map[c][y][x].item<double>() - gallery[g][c][gy][gx].item<double>();
              s += diff * diff;
            }
            best = std::min(best, std::sqrt(s));
          }
      REQUIRE(got[y][x].item<double>() == Approx(best).epsilon(1e-5));
    }
}

namespace {

// make_mlp's network from a model file's tensors, in double: per hidden layer Linear (with its
// bias when the file has one) -> BatchNorm in eval mode (eps 1e-5, affine when the file has it)
// -> ReLU or LeakyReLU(slope), then a final Linear. Layers sit 3 indices apart.
Vec mlp_reference(const adx::TensorMap& state, const std::string& prefix, Vec h, double leaky_slope) {
  auto get = [&](const std::string& name) { return state.at(name).to(torch::kFloat64).contiguous(); };
  for (int layer = 0;; layer += 3) {
    const std::string linear = prefix + std::to_string(layer);
    const auto w = get(linear + ".weight");
    Vec next(static_cast<size_t>(w.size(0)), 0.0);
    for (int64_t r = 0; r < w.size(0); ++r) {
      if (state.count(linear + ".bias")) next[static_cast<size_t>(r)] = get(linear + ".bias")[r].item<double>();
      for (int64_t c = 0; c < w.size(1); ++c) next[static_cast<size_t>(r)] += w[r][c].item<double>() * h[static_cast<size_t>(c)];
    }
    h = next;
    const std::string bn = prefix + std::to_string(layer + 1);
    if (!state.count(bn + ".running_mean")) return h;  // the last Linear
    const auto mean = get(bn + ".running_mean"), var = get(bn + ".running_var");
    const bool affine = state.count(bn + ".weight") > 0;
    for (size_t r = 0; r < h.size(); ++r) {
      const auto i = static_cast<int64_t>(r);
      double v = (h[r] - mean[i].item<double>()) / std::sqrt(var[i].item<double>() + 1e-5);
      if (affine) v = v * get(bn + ".weight")[i].item<double>() + get(bn + ".bias")[i].item<double>();
      h[r] = v > 0 ? v : leaky_slope * v;
    }
  }
}

// An item after the fitted preprocessing ((x - shift) * scale), in double.
Vec preprocessed(const adx::TensorMap& state, const torch::Tensor& item) {
  const auto shift = state.at("preprocess.shift").to(torch::kFloat64), scale = state.at("preprocess.scale").to(torch::kFloat64);
  Vec h(static_cast<size_t>(item.numel()));
  for (int64_t j = 0; j < item.numel(); ++j)
    h[static_cast<size_t>(j)] = (item[j].item<double>() - shift[shift.numel() == 1 ? 0 : j].item<double>()) *
                                scale[scale.numel() == 1 ? 0 : j].item<double>();
  return h;
}

// Deep SVDD's score from the saved weights: the squared distance of the bias-free,
// LeakyReLU(0.01) network's output to the center (minus R^2 for the soft boundary).
Vec deep_svdd_reference(const adx::TensorMap& state, const torch::Tensor& items, bool soft_boundary) {
  const auto center = state.at("model.center").to(torch::kFloat64);
  const double radius = state.at("model.radius").to(torch::kFloat64).item<double>();
  Vec out;
  for (int64_t i = 0; i < items.size(0); ++i) {
    const auto h = mlp_reference(state, "model.encoder.", preprocessed(state, items[i]), 0.01);
    double distance = 0;
    for (size_t r = 0; r < h.size(); ++r) distance += std::pow(h[r] - center[static_cast<int64_t>(r)].item<double>(), 2);
    out.push_back(soft_boundary ? distance - radius * radius : distance);
  }
  return out;
}

// The VAE's encoder in double: mu and log-variance of q(z | x) (the encoder MLP, a ReLU,
// then the two linear heads; log-variance clamped to [-10, 10]).
std::pair<Vec, Vec> vae_encode_reference(const adx::TensorMap& state, const torch::Tensor& item) {
  auto h = mlp_reference(state, "model.encoder.", preprocessed(state, item), 0.0);
  for (auto& v : h) v = std::max(v, 0.0);
  auto head = [&](const std::string& name) {
    const auto w = state.at(name + ".weight").to(torch::kFloat64), b = state.at(name + ".bias").to(torch::kFloat64);
    Vec out(static_cast<size_t>(w.size(0)));
    for (int64_t r = 0; r < w.size(0); ++r) {
      double v = b[r].item<double>();
      for (int64_t c = 0; c < w.size(1); ++c) v += w[r][c].item<double>() * h[static_cast<size_t>(c)];
      out[static_cast<size_t>(r)] = v;
    }
    return out;
  };
  auto logvar = head("model.logvar_head");
  for (auto& v : logvar) v = std::min(10.0, std::max(-10.0, v));
  return {head("model.mu_head"), logvar};
}

}  // namespace

TEST_CASE("Deep SVDD: distance to the center and soft-boundary score from the saved weights, in double",
          "[reference][deep_svdd]") {
  torch::manual_seed(6);
  const auto train = torch::randn({120, 5}) * 2 + 1;
  const auto test = torch::randn({10, 5}) * 3;
  for (const bool soft : {false, true}) {
    INFO((soft ? "soft_boundary" : "one_class"));
    auto detector = adx::make_detector(
        "deep_svdd", {{"objective", soft ? "soft_boundary" : "one_class"}, {"rep_dim", "3"}, {"hidden", "8,4"},
                      {"warm_up_epochs", "1"}, {"train.epochs", "4"}, {"pretrain_train.epochs", "2"},
                      {"runtime.threads", "1"}, {"runtime.validation_fraction", "0"}});
    detector->fit(adx::Data::tabular(train));
    const auto path = adx::test::temp_path("reference_deep_svdd.adx");
    detector->save(path);
    const auto file = adx::read_model_file(path);
    if (soft) REQUIRE(file.tensors.at("model.radius").item<double>() > 0);
    const auto expected = deep_svdd_reference(file.tensors, test, soft);
    const auto got = adx::test::to_doubles(detector->score(adx::Data::tabular(test)).per_item);
    for (size_t i = 0; i < expected.size(); ++i) REQUIRE(got[i] == Approx(expected[i]).epsilon(1e-4).margin(1e-6));
  }
}

TEST_CASE("GEOM: the Dirichlet fit matches the authors' code, padding is scipy's reflect mode", "[reference][rotation]") {
  // Reference: the GEOM authors' fixed_point_dirichlet_mle (with calc_approx_alpha_sum and
  // inv_psi) run with numpy and scipy on these six rows gives alpha = (12.92639025,
  // 3.56091395, 2.30761447), and the normality score of p = (0.2, 0.5, 0.3) is -22.544207167.
  const auto rows = tensor_of({{0.7, 0.2, 0.1}, {0.6, 0.3, 0.1}, {0.8, 0.1, 0.1}, {0.5, 0.3, 0.2},
                               {0.9, 0.05, 0.05}, {0.65, 0.25, 0.1}})
                        .to(torch::kFloat64);
  const auto alpha = adx::dirichlet_mle(rows.log());
  REQUIRE(alpha[0].item<double>() == Approx(12.92639025).epsilon(1e-7));
  REQUIRE(alpha[1].item<double>() == Approx(3.56091395).epsilon(1e-7));
  REQUIRE(alpha[2].item<double>() == Approx(2.30761447).epsilon(1e-7));
  const auto p = torch::tensor({0.2, 0.5, 0.3}, torch::kFloat64);
  REQUIRE(((alpha - 1) * p.log()).sum().item<double>() == Approx(-22.544207167).epsilon(1e-6));

  // scipy.ndimage 'reflect' (half-sample symmetric): padding [0 1 2 3] by 2 gives [1 0 | 0 1 2 3 | 3 2].
  const auto row = torch::arange(4, torch::kFloat32).reshape({1, 1, 1, 4});
  REQUIRE(adx::test::to_doubles(adx::GeometricTransform::symmetric_pad(row, 3, 2)) ==
          std::vector<double>{1, 0, 0, 1, 2, 3, 3, 2});
  // A shift by one to the right repeats the edge: [0 1 2 3] -> [0 0 1 2] (translation with reflect fill).
  const adx::GeometricTransform shift{false, 1, 0, 0};
  REQUIRE(adx::test::to_doubles(shift.apply(row)) == std::vector<double>{0, 0, 1, 2});
}

TEST_CASE("rotation: both scores equal their formulas on the classifier's outputs", "[reference][rotation]") {
  torch::manual_seed(9);
  const auto images = torch::rand({40, 1, 16, 16});
  const auto test = torch::rand({5, 1, 16, 16});
  auto detector = adx::make_detector("rotation", {{"channels", "4,8"}, {"train.epochs", "1"}, {"runtime.threads", "1"},
                                                  {"preprocess", "none"}});
  detector->fit(adx::Data::images(images));
  const auto path = adx::test::temp_path("reference_rotation.adx");
  detector->save(path);
  const auto file = adx::read_model_file(path);
  const auto alpha = file.tensors.at("rotation.dirichlet_alpha");
  REQUIRE(alpha.sizes() == torch::IntArrayRef({4, 4}));
  // The classifier rebuilt from the saved weights gives log p_t(x) per rotation.
  auto net = adx::nn::make_conv_classifier(1, {4, 8}, 4, 1);
  adx::load_module_state(*net, file.tensors, "model.");
  net->eval();
  Vec dirichlet(5, 0.0), likelihood(5, 0.0);
  for (int64_t t = 0; t < 4; ++t) {
    torch::NoGradGuard no_grad;
    const auto log_p = torch::log_softmax(net->forward(torch::rot90(test, t, {2, 3})), 1).to(torch::kFloat64);
    for (int64_t i = 0; i < 5; ++i) {
      likelihood[static_cast<size_t>(i)] -= log_p[i][t].item<double>() / 4;
      for (int64_t k = 0; k < 4; ++k)
        dirichlet[static_cast<size_t>(i)] -= (alpha[t][k].item<double>() - 1) * log_p[i][k].item<double>() / 4;
    }
  }
  const auto got = adx::test::to_doubles(detector->score(adx::Data::images(test)).per_item);
  for (size_t i = 0; i < 5; ++i) REQUIRE(got[i] == Approx(dirichlet[i]).epsilon(1e-4));
  auto simple = adx::make_detector("rotation", {{"channels", "4,8"}, {"train.epochs", "1"}, {"runtime.threads", "1"},
                                                {"preprocess", "none"}, {"score", "log_likelihood"}});
  simple->fit(adx::Data::images(images));
  const auto got_simple = adx::test::to_doubles(simple->score(adx::Data::images(test)).per_item);
  for (size_t i = 0; i < 5; ++i) REQUIRE(got_simple[i] == Approx(likelihood[i]).epsilon(1e-4));
}

TEST_CASE("VAE: KL and latent Mahalanobis scores from the saved weights in double; ELBO = RP + beta KL",
          "[reference][vae]") {
  torch::manual_seed(12);
  const auto train = torch::rand({150, 6});
  const auto test = torch::rand({8, 6}) * 1.5;
  // One model, scored with each criterion.
  adx::VaeOptions options;
  options.hidden({10, 6}).latent(3).beta(0.7).train().epochs(5);
  options.runtime().threads(1).validation_fraction(0);
  adx::Vae detector(options);
  detector.fit(adx::Data::tabular(train));
  auto scores_for = [&](adx::VaeScore criterion) {
    return adx::test::to_doubles(detector.score_with(adx::Data::tabular(test), criterion).per_item);
  };
  const auto kl = scores_for(adx::VaeScore::Kl);
  const auto mahalanobis = scores_for(adx::VaeScore::LatentMahalanobis);
  const auto path = adx::test::temp_path("reference_vae.adx");
  detector.save(path);
  const auto state = adx::read_model_file(path).tensors;
  // The training codes' Gaussian, recomputed: mean, covariance (n - 1) + ridge 1e-6 + 1e-3 * mean variance.
  Eigen::MatrixXd codes(train.size(0), 3);
  for (int64_t i = 0; i < train.size(0); ++i) {
    const auto mu = vae_encode_reference(state, train[i]).first;
    for (int j = 0; j < 3; ++j) codes(i, j) = mu[static_cast<size_t>(j)];
  }
  const Eigen::RowVectorXd mean = codes.colwise().mean();
  const Eigen::MatrixXd centred = codes.rowwise() - mean;
  Eigen::MatrixXd covariance = centred.transpose() * centred / static_cast<double>(train.size(0) - 1);
  covariance += (1e-6 + 1e-3 * covariance.diagonal().mean()) * Eigen::MatrixXd::Identity(3, 3);
  const Eigen::MatrixXd precision = covariance.inverse();
  for (int64_t i = 0; i < test.size(0); ++i) {
    const auto [mu, logvar] = vae_encode_reference(state, test[i]);
    double expected_kl = 0;
    Eigen::Vector3d delta;
    for (size_t j = 0; j < 3; ++j) {
      expected_kl += 0.5 * (mu[j] * mu[j] + std::exp(logvar[j]) - 1.0 - logvar[j]);
      delta(static_cast<int>(j)) = mu[j] - mean(static_cast<int>(j));
    }
    REQUIRE(kl[static_cast<size_t>(i)] == Approx(expected_kl).epsilon(1e-4).margin(1e-6));
    REQUIRE(mahalanobis[static_cast<size_t>(i)] == Approx(delta.dot(precision * delta)).epsilon(1e-3).margin(1e-5));
  }
  // The ELBO adds beta * KL to the reconstruction probability's Monte Carlo term (same noise).
  const auto rp = scores_for(adx::VaeScore::ReconstructionProbability);
  const auto elbo = scores_for(adx::VaeScore::Elbo);
  for (size_t i = 0; i < rp.size(); ++i) REQUIRE(elbo[i] == Approx(rp[i] + 0.7 * kl[i]).epsilon(1e-5));

  // The reconstruction probability E_q[-log N(x; decoder(z), sigma^2)] by Gauss-Hermite quadrature over
  // the 3-D latent in double (Golub-Welsch nodes, 24 per axis), against adx's Monte Carlo estimate with
  // 4000 samples: they must agree within 4 Monte Carlo standard errors (the quadrature's variance).
  const int nodes = 24;
  Eigen::MatrixXd jacobi = Eigen::MatrixXd::Zero(nodes, nodes);
  for (int k = 1; k < nodes; ++k) jacobi(k, k - 1) = jacobi(k - 1, k) = std::sqrt(static_cast<double>(k));
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> hermite(jacobi);
  const Eigen::VectorXd node = hermite.eigenvalues();
  const Eigen::VectorXd weight = hermite.eigenvectors().row(0).transpose().array().square();
  // The decoder (Linear -> BatchNorm(eval) -> ReLU per hidden layer, then Linear) as Eigen matrices.
  struct Layer {
    Eigen::MatrixXd w;
    Eigen::VectorXd b, mean, inv_std, gamma, beta;
  };
  auto matrix = [&](const std::string& name) {
    const auto t = state.at(name).to(torch::kFloat64).contiguous();
    Eigen::MatrixXd m(t.size(0), t.dim() == 2 ? t.size(1) : 1);
    for (int64_t r = 0; r < m.rows(); ++r)
      for (int64_t c = 0; c < m.cols(); ++c) m(r, c) = t.dim() == 2 ? t[r][c].item<double>() : t[r].item<double>();
    return m;
  };
  std::vector<Layer> decoder;
  for (int layer = 0;; layer += 3) {
    const std::string prefix = "model.decoder." + std::to_string(layer), bn = "model.decoder." + std::to_string(layer + 1);
    Layer l{matrix(prefix + ".weight"), matrix(prefix + ".bias").col(0), {}, {}, {}, {}};
    if (state.count(bn + ".running_mean")) {
      l.mean = matrix(bn + ".running_mean").col(0);
      l.inv_std = (matrix(bn + ".running_var").col(0).array() + 1e-5).rsqrt();
      l.gamma = matrix(bn + ".weight").col(0);
      l.beta = matrix(bn + ".bias").col(0);
    }
    decoder.push_back(l);
    if (!state.count(bn + ".running_mean")) break;
  }
  const Eigen::VectorXd log_sigma = matrix("model.log_sigma").col(0).array().max(-3.0);  // min_log_sigma
  auto negative_log_likelihood = [&](const Eigen::VectorXd& x, const Eigen::VectorXd& z) {
    Eigen::VectorXd h = z;
    for (const auto& l : decoder) {
      h = l.w * h + l.b;
      if (l.mean.size()) h = (((h - l.mean).array() * l.inv_std.array()) * l.gamma.array() + l.beta.array()).max(0.0);
    }
    const Eigen::ArrayXd r = (x - h).array() * (-log_sigma.array()).exp();
    return (0.5 * r.square() + log_sigma.array() + 0.5 * std::log(2 * M_PI)).sum();
  };
  adx::Vae many_samples(adx::VaeOptions(options).mc_samples(4000));
  many_samples.fit(adx::Data::tabular(train));  // the same seed and data: the same network
  REQUIRE(adx::test::to_doubles(many_samples.score_with(adx::Data::tabular(test), adx::VaeScore::Kl).per_item) == kl);
  const auto monte_carlo = adx::test::to_doubles(
      many_samples.score_with(adx::Data::tabular(test), adx::VaeScore::ReconstructionProbability).per_item);
  for (int64_t i = 0; i < test.size(0); ++i) {
    const auto [mu, logvar] = vae_encode_reference(state, test[i]);
    const auto item = preprocessed(state, test[i]);
    const Eigen::VectorXd x = Eigen::Map<const Eigen::VectorXd>(item.data(), static_cast<Eigen::Index>(item.size()));
    double mean = 0, second = 0;
    for (int a = 0; a < nodes; ++a)
      for (int b = 0; b < nodes; ++b)
        for (int c = 0; c < nodes; ++c) {
          const double eps[3] = {node(a), node(b), node(c)};
          Eigen::VectorXd z(3);
          for (int j = 0; j < 3; ++j) z(j) = mu[static_cast<size_t>(j)] + std::exp(0.5 * logvar[static_cast<size_t>(j)]) * eps[j];
          const double f = negative_log_likelihood(x, z), w = weight(a) * weight(b) * weight(c);
          mean += w * f;
          second += w * f * f;
        }
    const double standard_error = std::sqrt(std::max(0.0, second - mean * mean) / 4000.0);
    INFO("item " << i << ": quadrature " << mean << ", Monte Carlo " << monte_carlo[static_cast<size_t>(i)]
                 << ", standard error " << standard_error);
    REQUIRE(std::abs(monte_carlo[static_cast<size_t>(i)] - mean) <= 4 * standard_error + 1e-4 * std::abs(mean));
  }
}

namespace {

// A GAN detector fitted on tiny images and its model file, plus the network input the
// file implies: min-max preprocessing from the file, [0, 1] -> [-1, 1], padded with -1.
struct FittedGan {
  adx::TensorMap state;
  adx::nn::DcganSpec spec;
  torch::Tensor test, network_input;
  std::vector<double> scores;
};

FittedGan fit_gan(const std::string& name, adx::OptionMap options) {
  torch::manual_seed(21);
  const auto train = torch::rand({24, 1, 12, 12});
  FittedGan out;
  out.test = torch::rand({4, 1, 12, 12});
  options["runtime.threads"] = "1";
  options["latent"] = "4";
  options["width"] = "4";
  options["train.epochs"] = "1";
  auto detector = adx::make_detector(name, options);
  detector->fit(adx::Data::images(train));
  out.scores = adx::test::to_doubles(detector->score(adx::Data::images(out.test)).per_item);
  const auto path = adx::test::temp_path("reference_" + name + ".adx");
  detector->save(path);
  out.state = adx::read_model_file(path).tensors;
  out.spec = {16, 1, 4, 4};  // 12 px pads to the next power of two
  const auto shift = out.state.at("preprocess.shift"), scale = out.state.at("preprocess.scale");
  const auto x = ((out.test - shift) * scale) * 2.0 - 1.0;
  out.network_input = torch::constant_pad_nd(x, {2, 2, 2, 2}, -1.0);
  return out;
}

template <class Net>
Net load_net(Net net, const adx::TensorMap& state) {
  adx::load_module_state(*net, state, "model.");
  net->eval();
  return net;
}

double per_item_mean_square(const torch::Tensor& a, const torch::Tensor& b, int64_t i) {
  return (a[i].to(torch::kFloat64) - b[i].to(torch::kFloat64)).pow(2).mean().item<double>();
}

}  // namespace

TEST_CASE("GAN scores equal their formulas on the saved networks", "[reference][gan]") {
  SECTION("GANomaly: mean (z - z_hat)^2 of the two encoders") {
    auto f = fit_gan("ganomaly", {});
    torch::NoGradGuard no_grad;
    auto net = load_net(adx::GanomalyNet(f.spec), f.state);
    const auto z = net->encoder1->forward(f.network_input).flatten(1);
    const auto z_hat = net->encoder2->forward(net->decoder->forward(z.unsqueeze(2).unsqueeze(3))).flatten(1);
    for (int64_t i = 0; i < 4; ++i) REQUIRE(f.scores[static_cast<size_t>(i)] == Approx(per_item_mean_square(z, z_hat, i)).epsilon(1e-4));
  }
  SECTION("Skip-GANomaly: 0.9 mean (x - x_hat)^2 + 0.1 mean (f(x) - f(x_hat))^2") {
    auto f = fit_gan("skip_ganomaly", {});
    torch::NoGradGuard no_grad;
    auto net = load_net(adx::SkipGanomalyNet(f.spec), f.state);
    const auto& x = f.network_input;
    const auto fake = net->generator->forward(x);
    const auto fx = net->discriminator->features->forward(x), ffake = net->discriminator->features->forward(fake);
    for (int64_t i = 0; i < 4; ++i)
      REQUIRE(f.scores[static_cast<size_t>(i)] ==
              Approx(0.9 * per_item_mean_square(x, fake, i) + 0.1 * per_item_mean_square(fx, ffake, i)).epsilon(1e-4));
  }
  SECTION("f-AnoGAN: izi_f = mean (x - G(E(x)))^2 + kappa mean (f(x) - f(G(E(x))))^2") {
    auto f = fit_gan("f_anogan", {{"encoder_train.epochs", "1"}, {"kappa", "0.5"}});
    torch::NoGradGuard no_grad;
    auto net = load_net(adx::FAnoganNet(f.spec), f.state);
    const auto& x = f.network_input;
    const auto fake = net->generator->forward(net->encoder->forward(x));
    const auto fx = net->critic->features->forward(x), ffake = net->critic->features->forward(fake);
    for (int64_t i = 0; i < 4; ++i)
      REQUIRE(f.scores[static_cast<size_t>(i)] ==
              Approx(per_item_mean_square(x, fake, i) + 0.5 * per_item_mean_square(fx, ffake, i)).epsilon(1e-4));
  }
  SECTION("AnoGAN: without search steps, the lowest search loss over the stored start latents") {
    auto f = fit_gan("anogan", {{"search_steps", "0"}, {"search_starts", "8"}});
    torch::NoGradGuard no_grad;
    auto net = load_net(adx::AnoganNet(f.spec, 8), f.state);
    const auto& x = f.network_input;
    const auto fake = net->generator->forward(net->start_latents);
    const auto fx = net->discriminator->features->forward(x), ffake = net->discriminator->features->forward(fake);
    for (int64_t i = 0; i < 4; ++i) {
      double best = 1e300;
      for (int64_t s = 0; s < 8; ++s) {
        // (1 - lambda) sum |x - G(z)| + lambda sum |f(x) - f(G(z))|, lambda = 0.1
        const double loss = 0.9 * (x[i].to(torch::kFloat64) - fake[s].to(torch::kFloat64)).abs().sum().item<double>() +
                            0.1 * (fx[i].to(torch::kFloat64) - ffake[s].to(torch::kFloat64)).abs().sum().item<double>();
        best = std::min(best, loss);
      }
      REQUIRE(f.scores[static_cast<size_t>(i)] == Approx(best).epsilon(1e-4));
    }
  }
}

TEST_CASE("SimCLR: the kNN score is 1 - mean cosine similarity to the k nearest training features",
          "[reference][simclr]") {
  torch::manual_seed(14);
  const auto train = torch::randn({60, 5}), test = torch::randn({6, 5}) * 2;
  auto detector = adx::make_detector("simclr", {{"rep_dim", "4"}, {"hidden", "8"}, {"k", "3"}, {"train.epochs", "2"},
                                                {"runtime.threads", "1"}, {"runtime.validation_fraction", "0"}});
  detector->fit(adx::Data::tabular(train));
  const auto scores = adx::test::to_doubles(detector->score(adx::Data::tabular(test)).per_item);
  const auto path = adx::test::temp_path("reference_simclr.adx");
  detector->save(path);
  const auto state = adx::read_model_file(path).tensors;
  // Encoder features of the training items in double, unit length: the bank, recomputed.
  auto features = [&](const torch::Tensor& item) {
    auto h = mlp_reference(state, "model.encoder.", preprocessed(state, item), 0.0);
    double norm = 0;
    for (double v : h) norm += v * v;
    for (double& v : h) v /= std::sqrt(norm);
    return h;
  };
  std::vector<Vec> bank;
  for (int64_t i = 0; i < train.size(0); ++i) bank.push_back(features(train[i]));
  for (int64_t i = 0; i < test.size(0); ++i) {
    const auto h = features(test[i]);
    Vec similarity;
    for (const auto& b : bank) similarity.push_back(std::inner_product(h.begin(), h.end(), b.begin(), 0.0));
    std::sort(similarity.rbegin(), similarity.rend());
    const double expected = 1.0 - (similarity[0] + similarity[1] + similarity[2]) / 3.0;
    REQUIRE(scores[static_cast<size_t>(i)] == Approx(expected).epsilon(1e-4).margin(1e-5));
  }
}
