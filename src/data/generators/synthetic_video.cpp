#include <adx/core/error.hpp>
#include <adx/data/generators/synthetic_video.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace adx {
namespace {

struct Sprite {
  double x = 0, y = 0, vx = 0, vy = 0;
  int64_t width = 0, height = 0;
  float intensity = 0.85f;
  bool striped = false;
  int event = -1;  ///< index into the video's events; -1 = a normal walker
  int64_t stop_at = -1, stop_frames = 0, stopped_since = -1;  ///< loitering
};

// A smooth texture: a few random low-frequency waves plus fine grain, in [0.15, 0.45].
torch::Tensor background(int64_t size, uint64_t scene_seed) {
  std::mt19937_64 rng(scene_seed * 7919 + 17);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto grid = torch::arange(size, torch::kFloat32) / static_cast<float>(size);
  auto yy = grid.reshape({size, 1}).expand({size, size}), xx = grid.reshape({1, size}).expand({size, size});
  auto texture = torch::zeros({size, size});
  for (int k = 0; k < 6; ++k) {
    const double fx = 1 + 5 * u(rng), fy = 1 + 5 * u(rng), phase = 6.2831853 * u(rng);
    texture += torch::sin(6.2831853 * (fx * xx + fy * yy) + phase) / 6.0;
  }
  auto gen = at::detail::createCPUGenerator(scene_seed + 1);
  texture += 0.25 * at::rand({size, size}, gen);
  texture = (texture - texture.min()) / (texture.max() - texture.min() + 1e-6);
  return 0.15 + 0.3 * texture;
}

bool visible(const Sprite& s, int64_t size) {
  return s.x + s.width > 0 && s.x < size && s.y + s.height > 0 && s.y < size;
}

void draw(torch::Tensor& frame, const Sprite& s, int64_t size) {
  const auto x0 = static_cast<int64_t>(std::lround(s.x)), y0 = static_cast<int64_t>(std::lround(s.y));
  auto* pixels = frame.data_ptr<float>();
  for (int64_t dy = 0; dy < s.height; ++dy)
    for (int64_t dx = 0; dx < s.width; ++dx) {
      const int64_t px = x0 + dx, py = y0 + dy;
      if (px < 0 || py < 0 || px >= size || py >= size) continue;
      pixels[py * size + px] = s.striped && dy % 2 ? 0.5f * s.intensity : s.intensity;
    }
}

}  // namespace

const std::vector<std::string>& video_event_names() {
  static const std::vector<std::string> names{"speed", "direction", "object_type", "appearance", "loitering"};
  return names;
}

SyntheticVideo make_surveillance_video(const SyntheticVideoOptions& o, const std::vector<VideoEvent>& events,
                                       uint64_t scene_seed) {
  ADX_CHECK_AS(OptionError, o.size >= 16 && o.size <= 1024, "video size must be in [16, 1024], got {}", o.size);
  // 20 quiet frames first, 60 per event, 90 at the end for the last one to play out (a loiterer's walk and stop).
  const int64_t needed = 110 + 60 * static_cast<int64_t>(events.size());
  ADX_CHECK_AS(OptionError, o.frames >= needed, "a video with {} events needs at least {} frames, got {}",
               events.size(), needed, o.frames);
  ADX_CHECK_AS(OptionError, o.lanes >= 1 && o.speed > 0 && o.walkers_per_frame >= 0 && o.walkers_per_frame <= 1,
               "lanes must be >= 1, speed > 0 and walkers_per_frame in [0, 1], got {}, {} and {}", o.lanes, o.speed,
               o.walkers_per_frame);
  std::mt19937_64 rng(o.seed * 104729 + 3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double scale = static_cast<double>(o.size) / 32.0;
  // People fill about a tenth of the frame's height, as in surveillance benchmarks (UCSD Ped2).
  const auto person_w = std::max<int64_t>(2, std::lround(3 * scale)), person_h = std::max<int64_t>(4, std::lround(6 * scale));
  std::vector<double> lane_y;
  for (int64_t k = 0; k < o.lanes; ++k)
    lane_y.push_back(static_cast<double>(o.size) * static_cast<double>(k + 1) / static_cast<double>(o.lanes + 1) -
                     static_cast<double>(person_h) / 2.0);
  auto walker = [&](int64_t lane) {
    Sprite s;
    s.width = person_w;
    s.height = person_h;
    s.x = -static_cast<double>(person_w);
    s.y = lane_y[static_cast<size_t>(lane)] + (u(rng) - 0.5) * scale;
    s.vx = o.speed * (0.75 + 0.5 * u(rng));
    s.intensity = static_cast<float>(0.8 + 0.1 * u(rng));
    return s;
  };

  // Event start frames: one per slot of the frames after the first 20, at a random place in it.
  std::vector<int64_t> starts;
  const int64_t span = (o.frames - 20 - 90) / std::max<int64_t>(1, static_cast<int64_t>(events.size()));
  for (size_t e = 0; e < events.size(); ++e)
    starts.push_back(20 + static_cast<int64_t>(e) * span + static_cast<int64_t>(u(rng) * 0.5 * static_cast<double>(span)));

  const auto texture = background(o.size, scene_seed);
  auto noise_gen = at::detail::createCPUGenerator(o.seed * 31 + 5);
  SyntheticVideo out;
  out.frames = torch::empty({o.frames, 1, o.size, o.size});
  out.labels = torch::zeros({o.frames}, torch::kLong);
  std::vector<int64_t> first(events.size(), -1), last(events.size(), -1);
  std::vector<Sprite> sprites;
  for (int64_t t = 0; t < o.frames; ++t) {
    for (int64_t lane = 0; lane < o.lanes; ++lane)
      if (u(rng) < o.walkers_per_frame) sprites.push_back(walker(lane));
    for (size_t e = 0; e < events.size(); ++e) {
      if (starts[e] != t) continue;
      Sprite s = walker(static_cast<int64_t>(u(rng) * static_cast<double>(o.lanes)) % o.lanes);
      s.event = static_cast<int>(e);
      switch (events[e]) {
        case VideoEvent::Speed: s.vx = 3.5 * o.speed; break;
        case VideoEvent::Direction:
          if (u(rng) < 0.5) {  // against the flow
            s.x = static_cast<double>(o.size);
            s.vx = -o.speed;
          } else {  // across the lanes, top to bottom
            s.x = (0.25 + 0.5 * u(rng)) * static_cast<double>(o.size);
            s.y = -static_cast<double>(person_h);
            s.vx = 0;
            s.vy = o.speed;
          }
          break;
        case VideoEvent::ObjectType:  // a wide, low vehicle at walking pace
          s.width = std::lround(10 * scale);
          s.height = std::max<int64_t>(3, std::lround(4 * scale));
          s.intensity = 0.65f;
          break;
        case VideoEvent::Appearance:
          s.intensity = 0.05f;
          s.striped = true;
          break;
        case VideoEvent::Loitering:
          s.stop_at = static_cast<int64_t>((0.3 + 0.3 * u(rng)) * static_cast<double>(o.size));
          s.stop_frames = 45;
          break;
      }
      sprites.push_back(s);
    }
    // Move, then drop what has left the frame.
    for (auto& s : sprites) {
      const bool stopping = s.stop_at >= 0 && s.x >= static_cast<double>(s.stop_at) &&
                            (s.stopped_since < 0 || t - s.stopped_since < s.stop_frames);
      if (stopping) {
        if (s.stopped_since < 0) s.stopped_since = t;
        continue;
      }
      s.x += s.vx;
      s.y += s.vy;
    }
    sprites.erase(std::remove_if(sprites.begin(), sprites.end(),
                                 [&](const Sprite& s) {
                                   return s.x >= static_cast<double>(o.size) + 1 || s.y >= static_cast<double>(o.size) + 1 ||
                                          (s.vx < 0 && s.x + static_cast<double>(s.width) < -1);
                                 }),
                  sprites.end());
    // Render: the lit background, the sprites, the camera's noise.
    const double light = 1.0 + o.lighting_drift * std::sin(6.2831853 * static_cast<double>(t) / 150.0);
    auto frame = (texture * light).contiguous();
    for (const auto& s : sprites) {
      draw(frame, s, o.size);
      if (s.event < 0 || !visible(s, o.size)) continue;
      // Loitering is anomalous while the person stands; the other events while their object is in view.
      const bool anomalous =
          events[static_cast<size_t>(s.event)] != VideoEvent::Loitering || (s.stopped_since >= 0 && t - s.stopped_since < s.stop_frames);
      if (!anomalous) continue;
      out.labels[t] = 1;
      auto& f = first[static_cast<size_t>(s.event)];
      if (f < 0) f = t;
      last[static_cast<size_t>(s.event)] = t;
    }
    frame = (frame + o.noise * at::randn({o.size, o.size}, noise_gen)).clamp(0, 1);
    out.frames[t][0].copy_(frame);
  }
  for (size_t e = 0; e < events.size(); ++e)
    out.events.push_back({video_event_names()[static_cast<size_t>(events[e])], first[e], last[e] + 1});
  return out;
}

}  // namespace adx
