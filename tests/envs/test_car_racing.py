"""FastCarRacing: CarRacing-v3's rewards and terminations exactly, its frames within a stated difference."""

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("Box2D")
from gymnasium.envs.box2d.car_racing import CarRacing  # noqa: E402

from gailkit.envs.car_racing import FastCarRacing, fixed_actions  # noqa: E402

FRAME_EVERY = 50  # Gymnasium's renderer costs ~13 ms a frame: compare every 50th
MAD_LIMIT = 4.0  # mean |difference| per pixel and channel, of 255 (measured 2.3-2.9)


class SampledCarRacing(CarRacing):
    """Gymnasium's CarRacing, unchanged, that draws only the frames a test asks for (drawing
    touches no physics, so every reward and termination is still Gymnasium's own)."""

    draw = True

    def _render(self, mode):
        return super()._render(mode) if self.draw else None


@pytest.mark.parametrize("size", [64, 96])
def test_same_rewards_and_terminations_close_frames(size):
    fast, ref = FastCarRacing(size=size), SampledCarRacing()
    mads = []
    for seed in range(5):
        actions = fixed_actions(1000, seed=seed)
        ref.draw = True
        ref_obs, _ = ref.reset(seed=seed)
        obs, _ = fast.reset(seed=seed)
        for t, action in enumerate(actions):
            ref.draw = (t + 1) % FRAME_EVERY == 0
            ref_obs, ref_r, ref_term, _, _ = ref.step(action)
            obs, r, term, _, _ = fast.step(action)
            assert (r, term) == (ref_r, ref_term), f"seed {seed} step {t}: {(r, term)} != {(ref_r, ref_term)}"
            if ref.draw:
                want = ref_obs if size == 96 else np.asarray(Image.fromarray(ref_obs).resize((size, size), Image.BOX))
                mads.append(np.abs(want.astype(np.int16) - obs).mean())
            if term:
                break
    assert obs.shape == (size, size, 3) and obs.dtype == np.uint8
    assert np.mean(mads) < MAD_LIMIT, f"mean abs pixel difference {np.mean(mads):.2f} >= {MAD_LIMIT}"
    assert np.max(mads) < 2 * MAD_LIMIT, f"worst frame {np.max(mads):.2f}"


def test_frames_show_the_car_on_the_road():
    env = FastCarRacing(size=96)
    obs, _ = env.reset(seed=0)
    for _ in range(60):  # past the opening zoom
        obs, *_ = env.step(np.array([0.0, 0.0, 0.0], np.float32))
    road = np.all(np.abs(obs[60:70, 44:52].astype(int) - [102, 102, 102]) <= 8, axis=-1).mean()
    red = ((obs[..., 0] > 150) & (obs[..., 1] < 60)).sum()  # the hull, under the view's centre
    assert road > 0.5, f"road pixels around the car: {road:.2f}"
    assert red > 4, f"hull pixels: {red}"
    bar = obs[88:].mean()  # the black indicator bar, with its few coloured indicators
    assert bar < 60, f"mean of the bottom rows: {bar:.1f}"


def test_no_indicators_shows_the_same_view_over_a_black_bar():
    import gymnasium as gym

    import gailkit  # noqa: F401  (registers the ids)

    with_bar, view = gym.make("gailkit/FastCarRacing64-v3"), gym.make("gailkit/FastCarRacing64NoIndicators-v3")
    bar_rows = 64 * 7 // 8  # the bar is the window's bottom eighth
    a, _ = with_bar.reset(seed=3)
    b, _ = view.reset(seed=3)
    gauges = 0
    for action in fixed_actions(300, seed=3):
        a, ra, ta, _, _ = with_bar.step(action)
        b, rb, tb, _, _ = view.step(action)
        assert (ra, ta) == (rb, tb)
        np.testing.assert_array_equal(a[: bar_rows - 1], b[: bar_rows - 1])  # the row above may share a blend
        assert b[bar_rows:].max() == 0, "the bar should be black, with no gauges"
        gauges += int(a[bar_rows:].max() > 0)
    assert gauges > 250, f"the gauges were drawn on only {gauges} of 300 frames of the env with them"
