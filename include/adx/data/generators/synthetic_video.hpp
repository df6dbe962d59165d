#pragma once
// A synthetic surveillance scene for video anomaly detection: small "people" walk from
// left to right along lanes over a textured background, filmed by a camera with sensor
// noise and a slow drift of the lighting. Test videos hold events that break the scene's
// regularities: a person running (speed), one walking the wrong way or across the lanes
// (direction), an object of another type (a wide "car"), a person who looks different
// (dark, striped: appearance), and a person who stops and stays (loitering). A frame is
// labelled anomalous while an event's object is in view.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace adx {

struct SyntheticVideoOptions {
  int64_t size = 32;              ///< frames are size x size, one channel
  int64_t frames = 240;           ///< per video
  int64_t lanes = 3;              ///< horizontal paths the people walk along
  double walkers_per_frame = 0.04;  ///< chance that someone enters on each lane per frame
  double speed = 0.6;             ///< pixels per frame of a normal walker (+-25%)
  double noise = 0.02;            ///< camera noise, standard deviation
  double lighting_drift = 0.08;   ///< amplitude of the slow brightness change (relative)
  uint64_t seed = 0;
};

/// The kinds of events a test video can hold (None: normal video).
enum class VideoEvent { Speed, Direction, ObjectType, Appearance, Loitering };

struct VideoEventSpan {
  std::string kind;  ///< speed, direction, object_type, appearance, loitering
  int64_t begin = 0;  ///< first frame labelled anomalous
  int64_t end = 0;    ///< one past the last
};

struct SyntheticVideo {
  at::Tensor frames;  ///< T x 1 x size x size, float32 in [0, 1]
  at::Tensor labels;  ///< T int64, 1 while an event's object is in view
  std::vector<VideoEventSpan> events;
};

/// One video of the scene. Each event in `events` happens once, at a random time that keeps the
/// events apart (none in the first 20 frames). The background texture comes from `scene_seed`, so
/// the videos of one scene share it; `options.seed` draws the walkers, the noise and the event times.
SyntheticVideo make_surveillance_video(const SyntheticVideoOptions& options, const std::vector<VideoEvent>& events = {},
                                       uint64_t scene_seed = 0);

/// Names of the event kinds, in the enum's order.
const std::vector<std::string>& video_event_names();

}  // namespace adx
