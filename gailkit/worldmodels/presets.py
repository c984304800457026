"""World-model pipeline presets: one row per budget."""

from __future__ import annotations

import dataclasses

__all__ = ["WorldModelPreset", "WM_PRESETS"]


@dataclasses.dataclass(frozen=True)
class WorldModelPreset:
    env: str
    episodes: int
    latent_dim: int
    vae_epochs: int
    mdn_epochs: int
    hidden: int
    n_mixtures: int
    generations: int
    popsize: int
    rollouts: int
    max_steps: int
    tau: float
    collect_policy: str = "random"  # a key of gailkit.worldmodels.data.COLLECT_POLICIES
    vae_loss: str = "mse"  # V's reconstruction term: "mse" (paper) or "bce" (mostly-white frames)
    vae_batch: int = 64  # small batches for small data: V needs ~1,000 steps before z carries the pole
    frame_skip: int = 1  # C in the real env holds each action this many steps
    controller_where: str = "dream"  # where the V+M+C controller trains: "dream" or "real"
    controller_solution: str = "best"  # the trained C: best candidate seen, or the CMA-ES "mean" (the paper's)
    controller_sigma0: float = 0.5  # CMA-ES's first step size
    # > 0: V+M+C's search starts from the V-only controller (real env) after this many generations, with
    # h's weights at 0; the V only row then gets warm_start_generations + generations in all
    warm_start_generations: int = 0
    # > 0 (with a warm start): before V+M+C's search, record this many real episodes with V only's controller
    # (Gaussian noise 0.1 on its actions) and refit M on all data: the paper's iterative step, so h has seen
    # the states a driving controller reaches, not only the collection policy's
    refit_m_episodes: int = 0
    # with a warm start: V+M+C's search continues V only's (its mean, step size and covariance; h's weights as new
    # coordinates, see CMAES.widened) instead of a fresh CMA-ES from controller_sigma0
    warm_start_continue: bool = False
    # C's search over [z, h - h's data mean] (DreamTrainingConfig.input_offset): h's weights then move the action
    # through what h varies with, not through its mean (on CarRacing most of h's units sit far from 0)
    centre_memory: bool = False
    # with a warm start: V+M+C's search moves only the weights on h and the bias; the weights on z stay V only's
    # (DreamTrainingConfig.search_index), so the search has as many parameters as V only's had
    hold_z: bool = False
    # > 0: C's search reads h through its this many leading principal components over the collected data
    # (DreamTrainingConfig.input_map over [z, h - h's data mean]): V+M+C searches 3 x (z + k) weights and the bias,
    # nearly as few numbers as V only, yet sees what h varies with most; the controllers are over [z, h] as any
    memory_components: int = 0
    # False: M is not fed the actions (MDNRNNConfig.action_input), so h cannot hold the last action; C over [z, h]
    # then cannot copy it (fitted to a teacher, C over a trained M's h drove as a copycat: probe_worldmodel_memory.py)
    m_action_input: bool = True
    # True: M's latents are drawn again from V's posterior before each epoch (train_mdn's fresh_samples), as the
    # World Models code trains its RNN; False, every preset's so far: one draw per frame for every epoch
    m_fresh_samples: bool = False
    # M's teacher-forced training windows: mdn_seq_len steps, each from a zero LSTM state, mdn_batch to a minibatch.
    # Every preset so far: 32 steps, while C reads h after up to 1,000 steps of an episode; the World Models code
    # trains its RNN on whole 1,000-step episodes (max_seq_len=1000), so its h is trained where C reads it
    mdn_seq_len: int = 32
    mdn_batch: int = 32
    # > 1: fit this many M's on the same data, each from its own seed (train_mdn's ensemble); each dream follows one
    # of them, so a controller trained in them cannot profit from one M's mistakes alone. C sees the first's h
    m_ensemble: int = 1
    # > 0: both controllers start from C fitted by DAgger (gailkit.worldmodels.dagger, this many iterations) to a
    # privileged teacher that reads the track and the car (gailkit.envs.car_racing.TrackFollower): V+M+C's over
    # [z, h], V only's over z; then each is trained on reward by CMA-ES in the real env for `generations` from there
    dagger_iterations: int = 0
    # the scale of V's sampling noise in the z that C (and M beside it) are fed in the real env, in training and in
    # evaluation: 1, every preset's so far, draws from V's posterior as the paper did; 0 feeds V's mean (on CarRacing
    # controllers trained on draws drive far worse fed the mean: scripts/probe_worldmodel_latent_noise.py)
    controller_latent_noise: float = 1.0

    def vae_options(self) -> dict:
        """Keyword arguments of :func:`gailkit.worldmodels.train.train_vae`."""
        return {"latent_dim": self.latent_dim, "epochs": self.vae_epochs, "reconstruction": self.vae_loss,
                "batch_size": self.vae_batch}

    def mdn_options(self) -> dict:
        """Keyword arguments of :func:`gailkit.worldmodels.train.train_mdn`."""
        return {"epochs": self.mdn_epochs, "hidden": self.hidden, "n_mixtures": self.n_mixtures,
                "action_input": self.m_action_input, "fresh_samples": self.m_fresh_samples,
                "seq_len": self.mdn_seq_len, "batch_size": self.mdn_batch, "ensemble": self.m_ensemble}

    def controller_options(self) -> dict:
        """Fields of :class:`gailkit.worldmodels.controller.DreamTrainingConfig`."""
        return {"generations": self.generations, "popsize": self.popsize, "rollouts": self.rollouts,
                "max_steps": self.max_steps, "tau": self.tau, "frame_skip": self.frame_skip,
                "solution": self.controller_solution, "sigma0": self.controller_sigma0,
                "latent_noise": self.controller_latent_noise}


# fmt: off
# V-ep are passes over every frame; C runs in the dream (cheap), so its budget is generous, except
# where controller_where="real" (gens x pop x roll x steps real env steps).
WM_PRESETS: dict[str, WorldModelPreset] = {
    #                    env                                  eps  Z  V-ep M-ep  hid  K  gens  pop roll steps  tau  collect  # noqa: E501
    "quick":    WorldModelPreset("gailkit/CartPoleCentredPixels-v1", 60, 16,  12, 300, 256, 5,   30,  32, 16,  200, 1.15,  # noqa: E501
                                 vae_loss="bce", vae_batch=16),
    "cpu-hour": WorldModelPreset("gailkit/CarRacing64-v3",       64, 32,   2,  20, 256, 5,  150,  32,  8,  500, 1.15, "drive"),  # noqa: E501
    "paper":    WorldModelPreset("gailkit/CarRacing64-v3",   10_000, 32,  10,  20, 256, 5, 1800,  64, 16, 1000, 1.15, "drive"),  # noqa: E501
    # the fast env makes the paper's best setting affordable: C trained in the *real* env on [z, h]
    "fast-2h":  WorldModelPreset("gailkit/FastCarRacing64-v3",  100, 32,   3,  10, 256, 5,  100,  16,  4, 1000, 1.15, "drive",  # noqa: E501
                                 controller_where="real", controller_solution="mean"),
}
# the same, but V+M+C's CMA-ES starts from V only's controller after 100 generations (h weights 0)
# and refines it for 60 more; V only's row gets the same 160 generations
WM_PRESETS["fast-2h-warm"] = dataclasses.replace(WM_PRESETS["fast-2h"], generations=60, warm_start_generations=100,
                                                 controller_sigma0=0.2)
# within 2 hours: a 32-unit M (C over [z, h] has 195 weights, not 867), V+M+C's search starts from V only's
# controller after 60 generations and refines it for 40; V only's row gets the same 100 generations
WM_PRESETS["fast-2h-m32"] = dataclasses.replace(WM_PRESETS["fast-2h"], hidden=32, generations=40,
                                                warm_start_generations=60, controller_sigma0=0.2)
# the same on the World Models paper's input: the view without the bar's gauges (the paper cropped the bar
# off), so speed is not in a single frame and only M's h, which sees frames over time, can carry it
WM_PRESETS["fast-2h-m32-noindicators"] = dataclasses.replace(WM_PRESETS["fast-2h-m32"],
                                                             env="gailkit/FastCarRacing64NoIndicators-v3")
# fast-2h-m32 with M refitted on 50 more episodes driven by V only's controller before V+M+C's search
WM_PRESETS["fast-2h-m32-refit"] = dataclasses.replace(WM_PRESETS["fast-2h-m32"], refit_m_episodes=50)
# fast-2h-m32 with V+M+C's search continuing V only's at 60 generations (step size and covariance kept),
# rather than restarting at sigma 0.2 with an identity covariance
WM_PRESETS["fast-2h-m32-continue"] = dataclasses.replace(WM_PRESETS["fast-2h-m32"], warm_start_continue=True)
# fast-2h-m32 with V+M+C's search over [z, h - h's mean over the collected data]: the same controllers, but a
# step in a weight on h no longer shifts the action by that weight times h's mean
WM_PRESETS["fast-2h-m32-centred"] = dataclasses.replace(WM_PRESETS["fast-2h-m32"], centre_memory=True)
# V+M+C from V only's controller after 100 generations, with z's weights held at V only's: 40 generations
# search h's weights and the bias alone (99 numbers, as V only's search); V only's row gets the same 140 generations
# (bench_worldmodel.py adds a control: V only's controller from the same start, its biases alone searched as V+M+C's)
WM_PRESETS["fast-2h-m32-hold-z"] = dataclasses.replace(WM_PRESETS["fast-2h-m32"], warm_start_generations=100,
                                                      hold_z=True)
# fmt: on
# hold-z with M trained 30 epochs (not 10) on a fresh draw of V's posterior each epoch: an M that forecasts the next
# latent from draws of V 1.4x better than the preset's (held-out squared error 1.326 against 1.899; copying the draw
# 20.939: scripts/probe_worldmodel_m_samples.py). Does h's search then gain over the biases' alone?
WM_PRESETS["fast-2h-m32-hold-z-m30"] = dataclasses.replace(WM_PRESETS["fast-2h-m32-hold-z"], mdn_epochs=30,
                                                          m_fresh_samples=True)
# hold-z-m30 with C fed V's posterior mean, not a draw, in every search and evaluation (M beside it too): C trained on
# draws relies on their noise (fed the mean, hold-z-m30's controllers fall from 695.6 to 253.9); trained on the mean,
# does V only drive as well, and does h, which sees through the noise of draws, add anything to a noiseless z? Over
# three seeds both drive better (V+M+C 750.8, V only 763.7); C leans on h, but V+M+C is not ahead (-12.9, SE 8.5)
WM_PRESETS["fast-2h-m32-hold-z-m30-means"] = dataclasses.replace(WM_PRESETS["fast-2h-m32-hold-z-m30"],
                                                                controller_latent_noise=0.0)
# hold-z-m30-means without holding z: from V only's controller after 100 generations, V+M+C's search moves every
# weight on z, the biases, and weights on h's 4 leading principal components (over the collected data), 111 numbers
# against V only's 99, where a search over all of h's 32 units had 195 and fell behind V only (fast-2h-m32, -continue,
# -centred). Freezing h cost -m30-means' controller 34.4: C uses h there; does a search that can afford h get ahead?
# Over three seeds V+M+C 847.0, V only 814.0 (+33.0, SE 8.3), but V only's search restarted the same way 855.3
# (V+M+C -8.3, SE 6.2) and V+M+C with h held at its data mean 841.5 (+5.5): the lead is the restarted search's, not h's
WM_PRESETS["fast-2h-m32-means-pc4"] = dataclasses.replace(WM_PRESETS["fast-2h-m32-hold-z-m30-means"], hold_z=False,
                                                         memory_components=4)
# hold-z-m30-means on the World Models paper's input, frames without the bar's gauges: speed is then in no single frame,
# so a C fed V's mean can get it only from M's h, which sees the frames over time. Does h then put V+M+C ahead? Not
# over two seeds: C leaned on h (held at its data mean, h cost 52.1), but V only drove better (765.4 against 736.7)
WM_PRESETS["fast-2h-m32-hold-z-m30-means-noindicators"] = dataclasses.replace(
    WM_PRESETS["fast-2h-m32-hold-z-m30-means"], env="gailkit/FastCarRacing64NoIndicators-v3")
# hold-z-m30-means with M trained as the World Models code trains it, on whole episodes: each 1,000-step episode one
# window from a zero state (not 32-step windows), minibatches of 4 episodes, 100 epochs (about as many updates as
# -m30's 30 epochs of 32-step windows), fresh draws of V each epoch. C reads h after up to 1,000 steps; only such an
# M was trained on the states h is in there. Does its h put V+M+C ahead of V only? Not over three seeds: V+M+C 755.2,
# V only 763.7 (-8.5, SE 8.9), as with -m30-means' M; C leans on h (held at its data mean, h cost 66.7)
WM_PRESETS["fast-2h-m32-hold-z-means-m-whole"] = dataclasses.replace(
    WM_PRESETS["fast-2h-m32-hold-z-m30-means"], mdn_seq_len=1000, mdn_batch=4, mdn_epochs=100)
# fast-2h-m32-noindicators with an M that is not fed the actions: its h follows the frames alone (DAgger over
# [z, h] of such an M drove ahead of z alone without the gauge: scripts/probe_worldmodel_memory.py --rows zh_blind)
WM_PRESETS["fast-2h-m32-noindicators-blind"] = dataclasses.replace(WM_PRESETS["fast-2h-m32-noindicators"],
                                                                   m_action_input=False)
# the blind preset with both controllers started by imitation: DAgger fits C to the privileged TrackFollower
# (V+M+C over [z, h], V only over z, the same teacher, budget and tracks), then CMA-ES trains each on reward in the
# real env for 30 generations. The step size is small: the fitted weights are small (a spread of about 0.2 against
# CMA-ES's 2); candidates at step 0.05 from the fitted C drove far worse than it, at 0.01 about as well
WM_PRESETS["fast-2h-m32-noindicators-blind-dagger"] = dataclasses.replace(
    WM_PRESETS["fast-2h-m32-noindicators-blind"], dagger_iterations=6, warm_start_generations=0, generations=30,
    controller_sigma0=0.01)
# fast-2h-m32-noindicators with M left as initialised (0 epochs): h is a fixed random LSTM's features of the past z and
# actions, a reservoir. Tallec, Blier and Kalainathan's reproduction of World Models (2019) scored as well with an
# untrained M as with a trained one (870 and 860 +/- 120); DAgger's C over such an h drove a little ahead of z alone
# without the gauge, not settled (+15.6, SE 10.1 over ten seeds; scripts/probe_worldmodel_memory.py, row zh_untrained)
WM_PRESETS["fast-2h-m32-noindicators-untrained"] = dataclasses.replace(WM_PRESETS["fast-2h-m32-noindicators"],
                                                                       mdn_epochs=0)
