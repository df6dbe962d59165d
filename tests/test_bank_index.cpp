// Nearest-neighbour search of memory banks: faiss's exact index against adx's, the
// recall of the approximate indexes, compressed banks, fall-back and bad input, and
// PatchCore's scores through save -> load for every search mode.
#include "test_helpers.hpp"

#include <adx/data/formats/images.hpp>
#include <adx/data/generators/synthetic_industrial.hpp>
#include <adx/detectors/components/algorithms/bank_index.hpp>
#include <adx/detectors/components/algorithms/coreset.hpp>
#include <adx/detectors/patchcore/patchcore.hpp>
#include <adx/io/model_file.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <limits>

using adx::Data;

namespace {

// Rows drawn around `centres` cluster centres, as patch features gather around a few textures; within a
// cluster they vary along 8 directions (features of images have few degrees of freedom), plus a little
// noise in every dimension.
torch::Tensor clustered(int64_t rows, int64_t dims, int64_t centres, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto basis_gen = at::detail::createCPUGenerator(99);  // the same directions for banks and queries
  const auto centre = at::randn({centres, dims}, basis_gen) * 3;
  const auto basis = at::randn({8, dims}, basis_gen) / std::sqrt(8.0);
  const auto which = at::randint(centres, {rows}, gen);
  return (centre.index_select(0, which) + at::randn({rows, 8}, gen).mm(basis) + 0.1 * at::randn({rows, dims}, gen))
      .contiguous();
}

torch::Tensor exact_nearest(const torch::Tensor& queries, const torch::Tensor& bank) {
  torch::Tensor distances, indices;
  adx::nearest_neighbours(queries, bank, &distances, &indices);
  return indices;
}

double recall_at_1(const adx::BankIndex& index, const torch::Tensor& queries, const torch::Tensor& bank) {
  torch::Tensor indices;
  index.search(queries, nullptr, &indices);
  return exact_nearest(queries, bank).eq(indices).to(torch::kDouble).mean().item<double>();
}

}  // namespace

TEST_CASE("faiss's exact index finds the same neighbours as adx's search", "[industrial][search]") {
  const auto bank = clustered(3000, 64, 40, 1), queries = clustered(600, 64, 40, 2);
  torch::Tensor adx_distance, adx_index, faiss_distance, faiss_index;
  adx::nearest_neighbours(queries, bank, &adx_distance, &adx_index);
  adx::BankIndex flat;
  flat.build(bank, adx::BankSearch().kind(adx::SearchKind::Flat));
  REQUIRE(flat.kind() == adx::SearchKind::Flat);
  flat.search(queries, &faiss_distance, &faiss_index);
  // faiss sums in its own order (its GEMM, or its own kernels for small batches), so its rows are adx's
  // except at near-ties, and its distances carry float32 rounding: 1e-5 of (|x| + |y|)^2 is about 20 times
  // the worst case for 64 dimensions, and far below the gaps between distinct neighbours here.
  adx::test::require_same_nearest(queries, bank, faiss_index, faiss_distance, adx_index, 1e-5);
  // The exact kind is adx's own search over the bank grouped by cell: the same rows once mapped back
  // through order(), the same distances to the bit (the fixed-order kernel decides both).
  adx::BankIndex exact;
  exact.build(bank, adx::BankSearch().exact_cells(55));
  REQUIRE(exact.cells().count() > 1);
  REQUIRE(torch::equal(exact.bank(), bank.index_select(0, exact.order())));
  torch::Tensor d, i;
  exact.search(queries, &d, &i);
  REQUIRE(torch::equal(exact.order().index_select(0, i), adx_index));
  REQUIRE(torch::equal(d, adx_distance));
  REQUIRE(exact.memory_bytes() == exact.cells().memory_bytes());
  REQUIRE(exact.memory_bytes() < bank.numel() * 4);
  // Left to choose, a bank this small (3,000 x 64, under 2^20 values) is searched whole: the cells' bookkeeping
  // would cost more than they save.
  adx::BankIndex automatic;
  automatic.build(bank, adx::BankSearch());
  REQUIRE(automatic.cells().count() == 0);
  REQUIRE_FALSE(automatic.order().defined());
  REQUIRE(automatic.memory_bytes() == 0);
}

TEST_CASE("exact search's answers are the fixed-order kernel's, whatever the GEMM's blocks or threads",
          "[industrial][search]") {
  // Near-ties on purpose: copies of bank rows, and rows nudged by a few float32 steps, so that a GEMM's
  // rounding could reorder them; the answer must still be the row with the least fixed-order distance.
  auto bank = clustered(2000, 96, 30, 11);
  bank = torch::cat({bank, bank.slice(0, 0, 40), bank.slice(0, 40, 80) * (1 + 3e-7)});
  auto queries = torch::cat({clustered(300, 96, 30, 12), bank.slice(0, 0, 20), bank.slice(0, 60, 70) * (1 - 2e-7)});
  const int64_t q = queries.size(0), m = bank.size(0), d = bank.size(1);
  // Brute force: every row's fixed-order distance, least first, ties to the lower row.
  std::vector<int64_t> expected_row(q);
  std::vector<float> expected_distance(q);
  const float *x = queries.data_ptr<float>(), *y = bank.data_ptr<float>();
  for (int64_t i = 0; i < q; ++i) {
    float best = std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < m; ++j) {
      const float v = adx::squared_distance_fixed_order(x + i * d, y + j * d, d);
      if (v < best) {
        best = v;
        expected_row[i] = j;
      }
    }
    expected_distance[i] = std::sqrt(best);
  }
  const auto expected_rows = torch::tensor(expected_row, torch::kLong);
  const auto expected_distances = torch::tensor(expected_distance, torch::kFloat32);
  const int threads = at::get_num_threads();
  for (const int t : {1, 2}) {
    at::set_num_threads(t);
    for (const int64_t block : {int64_t{1} << 24, int64_t{7000}, int64_t{300}}) {
      INFO(t << " threads, blocks of " << block << " distances");
      torch::Tensor distance, index;
      adx::nearest_neighbours(queries, bank, &distance, &index, block);
      REQUIRE(torch::equal(index, expected_rows));
      REQUIRE(torch::equal(distance, expected_distances));
    }
  }
  at::set_num_threads(threads);
  // The k nearest, by the same kernel: a brute-force ranking of every row.
  torch::Tensor k_distance, k_index;
  adx::k_nearest_neighbours(queries, bank, 5, &k_distance, &k_index);
  for (int64_t i = 0; i < q; i += 37) {
    std::vector<std::pair<float, int64_t>> all;
    for (int64_t j = 0; j < m; ++j) all.emplace_back(adx::squared_distance_fixed_order(x + i * d, y + j * d, d), j);
    std::sort(all.begin(), all.end());
    for (int64_t r = 0; r < 5; ++r) {
      REQUIRE(k_index[i][r].item<int64_t>() == all[r].second);
      REQUIRE(k_distance[i][r].item<float>() == std::sqrt(all[r].first));
    }
  }
  REQUIRE(torch::equal(k_index.select(1, 0), expected_rows));
  // Leave-one-out: a query whose group leaves fewer than k rows gets its own group's rows last, in row order,
  // at distance infinity.
  const auto small = bank.slice(0, 0, 6);
  const auto groups = torch::tensor({0, 0, 0, 0, 1, 1}, torch::kLong);
  adx::k_nearest_neighbours(queries.slice(0, 0, 2), small, 4, &k_distance, &k_index, torch::tensor({0, 1}), groups);
  REQUIRE(torch::equal(k_index[0].slice(0, 2), torch::tensor({0, 1}, torch::kLong)));
  REQUIRE(std::isinf(k_distance[0][2].item<float>()));
  REQUIRE(std::isfinite(k_distance[0][1].item<float>()));
  REQUIRE(torch::equal(std::get<0>(k_index[1].slice(0, 0, 4).sort()), torch::tensor({0, 1, 2, 3}, torch::kLong)));
  REQUIRE_THROWS_AS(adx::k_nearest_neighbours(queries, small, 7, &k_distance, &k_index), adx::ValueError);
  // Row pairs by the same kernel.
  const auto pairs = adx::row_pair_distances(queries.slice(0, 0, 3), bank.slice(0, 5, 8));
  for (int64_t i = 0; i < 3; ++i)
    REQUIRE(pairs[i].item<float>() == std::sqrt(adx::squared_distance_fixed_order(x + i * d, y + (5 + i) * d, d)));
}

TEST_CASE("cell search skips most of the bank and still answers as the full search does, bit for bit",
          "[industrial][search]") {
  for (const int64_t dims : {32, 384}) {
    INFO(dims << " dimensions");
    auto bank = clustered(4000, dims, 50, 7);
    // Ties: a few rows repeated at the end of the bank.
    bank = torch::cat({bank, bank.slice(0, 0, 20)});
    auto queries = clustered(700, dims, 50, 8);
    // Queries that are bank rows (distance 0, tied with their copies), and outliers far from everything.
    queries = torch::cat({queries, bank.slice(0, 0, 30), 40 * torch::randn({20, dims})});
    torch::Tensor offsets;
    const auto order = adx::partition_bank(bank, 0, &offsets);
    const auto grouped = bank.index_select(0, order).contiguous();
    const auto cells = adx::describe_cells(grouped, offsets);
    REQUIRE(cells.count() > 40);  // round(sqrt(4020)) = 63, less any cell k-means left empty
    REQUIRE(cells.count() <= 63);
    torch::Tensor full_d, full_i, cell_d, cell_i;
    adx::nearest_neighbours(queries, grouped, &full_d, &full_i);
    int64_t computed = 0;
    adx::nearest_neighbours_in_cells(queries, grouped, cells, &cell_d, &cell_i, {}, {}, &computed);
    REQUIRE(torch::equal(cell_d, full_d));
    REQUIRE(torch::equal(cell_i, full_i));
    const double share = static_cast<double>(computed) / static_cast<double>(queries.size(0) * bank.size(0));
    INFO("share of the distances computed " << share);
    REQUIRE(share < 0.5);
    // Leave-one-out groups: queries never match rows of their own group.
    const auto query_groups = torch::randint(5, {queries.size(0)}, torch::kLong);
    const auto bank_groups = torch::randint(5, {bank.size(0)}, torch::kLong);
    adx::nearest_neighbours(queries, grouped, &full_d, &full_i, adx::kNearestNeighbourBlock, query_groups, bank_groups);
    adx::nearest_neighbours_in_cells(queries, grouped, cells, &cell_d, &cell_i, query_groups, bank_groups);
    REQUIRE(torch::equal(cell_d, full_d));
    REQUIRE(torch::equal(cell_i, full_i));
  }
  // The cells hold every row once, and malformed boundaries are refused.
  const auto bank = clustered(500, 16, 10, 9);
  torch::Tensor offsets;
  const auto order = adx::partition_bank(bank, 7, &offsets);
  REQUIRE(torch::equal(std::get<0>(order.sort()), torch::arange(500)));
  REQUIRE_THROWS_AS(adx::describe_cells(bank, torch::tensor({0, 300, 200, 500})), adx::ValueError);
  REQUIRE_THROWS_AS(adx::describe_cells(bank, torch::tensor({0, 499})), adx::ValueError);
}

TEST_CASE("approximate indexes recall the nearest neighbour at their default settings", "[industrial][search]") {
  const auto bank = clustered(8000, 64, 60, 3), queries = clustered(1000, 64, 60, 4);
  for (const auto kind : {adx::SearchKind::Ivf, adx::SearchKind::Hnsw}) {
    adx::BankIndex index;
    index.build(bank, adx::BankSearch().kind(kind));
    REQUIRE(index.kind() == kind);
    REQUIRE(index.note().empty());
    const double recall = recall_at_1(index, queries, bank);
    INFO(kind << " recall@1 " << recall);
    REQUIRE(recall >= 0.95);
  }
  // An 8-bit bank: a quarter of the float32 bank's bytes, and still mostly the same neighbours.
  adx::BankIndex float_bank, sq8_bank;
  float_bank.build(bank, adx::BankSearch().kind(adx::SearchKind::Flat));
  sq8_bank.build(bank, adx::BankSearch().kind(adx::SearchKind::Flat).compression(adx::BankCompression::Sq8));
  INFO("flat " << float_bank.memory_bytes() << " bytes, sq8 " << sq8_bank.memory_bytes() << " bytes");
  REQUIRE(float_bank.memory_bytes() >= 8000 * 64 * 4);
  REQUIRE(sq8_bank.memory_bytes() < float_bank.memory_bytes() / 3);
  const double recall = recall_at_1(sq8_bank, queries, bank);
  INFO("sq8 recall@1 " << recall);
  REQUIRE(recall >= 0.9);
}

TEST_CASE("a bank too small for its cells falls back to exact search; bad settings and indexes are errors",
          "[industrial][search][errors]") {
  const auto bank = clustered(30, 8, 3, 5), queries = clustered(20, 8, 3, 6);
  adx::BankIndex index;
  index.build(bank, adx::BankSearch().kind(adx::SearchKind::Ivf).ivf_lists(50));
  REQUIRE(index.kind() == adx::SearchKind::Flat);
  REQUIRE_THAT(index.note(), Catch::Contains("50 lists") && Catch::Contains("30"));
  REQUIRE(recall_at_1(index, queries, bank) == 1.0);

  REQUIRE_THROWS_AS(adx::make_detector("patchcore", {{"search", "annoy"}}), adx::OptionError);
  REQUIRE_THROWS_WITH(adx::check_options(adx::BankSearch().compression(adx::BankCompression::Sq8)),
                      Catch::Contains("option 'compression' sq8 needs a faiss search"));
  REQUIRE_THROWS_WITH(adx::make_detector("patchcore", {{"search.kind", "hnsw"}, {"search.hnsw_m", "1"}}),
                      Catch::Contains("option 'search.hnsw_m' must be in [2, 256], got 1"));
  REQUIRE_THROWS_AS(index.search(torch::rand({2, 9}), nullptr, nullptr), adx::ShapeError);

  adx::BankIndex flat;
  flat.build(bank, adx::BankSearch().kind(adx::SearchKind::Flat));
  auto bytes = flat.serialize();
  adx::BankIndex restored;
  REQUIRE_THROWS_AS(restored.deserialize(bytes.slice(0, 0, 10).clone(), bank, adx::BankSearch().kind(adx::SearchKind::Flat)), adx::IoError);
  REQUIRE_THROWS_AS(restored.deserialize(bytes, clustered(31, 8, 3, 5), adx::BankSearch().kind(adx::SearchKind::Flat)), adx::IoError);
  auto garbage = bytes.clone();
  garbage.slice(0, 0, 4).fill_(0x41);
  REQUIRE_THROWS_AS(restored.deserialize(garbage, bank, adx::BankSearch().kind(adx::SearchKind::Flat)), adx::IoError);
  restored.deserialize(bytes, bank, adx::BankSearch().kind(adx::SearchKind::Flat));
  REQUIRE(recall_at_1(restored, queries, bank) == 1.0);

  // Exact search's cells: boundaries that do not fit the bank are an IoError, as is a record of cells
  // under options that ask for faiss.
  const auto big = clustered(400, 8, 6, 10);
  const auto six_cells = adx::BankSearch().exact_cells(6);
  adx::BankIndex exact;
  exact.build(big, six_cells);
  const auto cells = exact.serialize();
  REQUIRE(cells.scalar_type() == torch::kLong);
  REQUIRE_THROWS_AS(restored.deserialize(cells, big.slice(0, 0, 300), six_cells), adx::IoError);
  REQUIRE_THROWS_AS(restored.deserialize(cells.flip(0), exact.bank(), six_cells), adx::IoError);
  REQUIRE_THROWS_AS(restored.deserialize(cells, exact.bank(), adx::BankSearch().kind(adx::SearchKind::Flat)), adx::IoError);
  restored.deserialize(cells, exact.bank(), six_cells);
  torch::Tensor a, b;
  exact.search(queries, nullptr, &a);
  restored.search(queries, nullptr, &b);
  REQUIRE(torch::equal(a, b));
}

TEST_CASE("PatchCore scores through every search mode and reloads to identical scores", "[industrial][search]") {
  adx::SyntheticOptions o;
  o.image_size = 64;
  o.train_images = 16;
  o.good_test_images = 6;
  o.defects_per_type = 2;
  const auto root = adx::test::temp_path("synthetic_search");
  std::filesystem::remove_all(root);
  adx::write_synthetic_industrial(root, o);
  const auto category = adx::load_mvtec_category(root + "/washer", {64, 0});
  torch::Tensor exact_scores;
  for (const std::string search : {"exact", "exact, 8 cells", "flat", "ivf", "hnsw", "flat+sq8"}) {
    INFO(search);
    const bool sq8 = search == "flat+sq8";
    auto kind = adx::SearchKind::Exact;
    adx::detail::option_from_string("search", sq8 ? "flat" : search.substr(0, search.find(',')), kind);
    adx::Patchcore detector(adx::PatchcoreOptions()
                                .backbone("resnet18")
                                .layers("layer1,layer2")
                                .search(adx::BankSearch()
                                            .kind(kind)
                                            .exact_cells(search == "exact, 8 cells" ? 8 : 0)
                                            .compression(sq8 ? adx::BankCompression::Sq8 : adx::BankCompression::None))
                                .runtime(adx::RuntimeOptions().threads(2).seed(3)));
    detector.fit(Data::images(category.train));
    const auto scores = detector.score(Data::images(category.test));
    // This bank is small enough to be searched whole by default; cells skip rows, never answers.
    if (search == "exact") exact_scores = scores.per_item;
    if (search == "exact, 8 cells") {
      REQUIRE(detector.index().cells().count() == 8);
      REQUIRE(torch::equal(scores.per_item, exact_scores));
    }
    // faiss's distances carry its own float32 rounding (about 1e-6 relative here); 1e-4 leaves room for
    // a near-tie resolved the other way.
    if (search == "flat") REQUIRE(torch::allclose(scores.per_item, exact_scores, 1e-4, 1e-3));
    const double auroc = adx::metrics::roc_auc(category.test_labels, scores.to_vector());
    INFO("image AUROC " << auroc);
    REQUIRE(auroc > 0.8);
    const auto path = adx::test::temp_path("patchcore_" + search.substr(0, search.find(',')) + ".adx");
    detector.save(path);
    auto loaded = adx::load(path);
    const auto again = loaded->score(Data::images(category.test));
    REQUIRE(torch::equal(again.per_item, scores.per_item));
    REQUIRE(torch::equal(again.pixel_map, scores.pixel_map));
    REQUIRE(dynamic_cast<adx::Patchcore&>(*loaded).index().kind() == detector.index().kind());
    if (search == "hnsw") {
      // A file written before the search settings nested under "search." names them by their old keys; it
      // loads to the same scores.
      auto file = adx::read_model_file(path);
      for (const char* key : {"kind", "exact_cells", "compression", "ivf_lists", "ivf_probes", "hnsw_m", "hnsw_ef_search"}) {
        const auto value = file.options.at(std::string("search.") + key);
        file.options.erase(std::string("search.") + key);
        file.options[key == std::string("kind") ? "search" : key] = value;
      }
      adx::write_model_file(path, file);
      auto old_keys = adx::load(path);
      REQUIRE(old_keys->options_map() == loaded->options_map());
      REQUIRE(torch::equal(old_keys->score(Data::images(category.test)).per_item, scores.per_item));
    }
  }
  // Old keys and new keys in one map name the same value twice.
  REQUIRE_THROWS_WITH(adx::make_detector("patchcore", {{"search", "hnsw"}, {"search.kind", "flat"}}),
                      Catch::Contains("older name"));
}
