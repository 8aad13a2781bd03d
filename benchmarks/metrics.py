"""Benchmark fusekit's metrics and ``fusekit eval --jobs``.

1. Speed at equal values: the metric set of CDDFuse's ``utils/Evaluator.py``
   (EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, PSNR, CC) on 640 x 480
   triplets (MSRS test pairs, fused = their rounded average), computed by
   fusekit's ``cddfuse`` profile and by :class:`Reference`, a
   straightforward implementation of that script's approach written for this
   benchmark (boolean-mask assignments, full 2-D ``convolve2d`` windows,
   per-value label counting for MI, scikit-image's SSIM). Both run in the
   same process, one after the other; the values are checked to agree
   (relative 1e-5).
2. Parallel evaluation: :func:`fusekit.evaluate` (what ``fusekit eval``
   runs) on the 50 RoadScene test pairs with all metrics, ``jobs=1`` vs
   ``jobs=2``, fused images taken from a warm cache.
3. Several methods: the outputs of four classic methods on 20 RoadScene
   pairs scored in one ``evaluate`` call (sources' statistics shared) vs one
   call per method, same values.

Run from the repository root (``shared/`` beside it)::

    python benchmarks/metrics.py            # writes its section of BENCHMARKS.md
    python benchmarks/metrics.py --no-write

The reference and fusekit are timed back to back in interleaved rounds and
the ratio is taken per round (median reported), because other processes on a
shared machine change its speed from one second to the next; wall and CPU
(process) times are both given.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.signal import convolve2d

from fusekit.experiments import write_section

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
NAMES = ("en", "sd", "sf", "ag", "mi", "scd", "vif", "qabf", "ssim", "psnr", "cc")


class Reference:
    """The CDDFuse script's approach, re-implemented plainly (float32 inputs, 0-255)."""

    @staticmethod
    def en(f):
        counts = np.bincount(np.uint8(np.round(f)).ravel(), minlength=256)
        p = counts / f.size
        return -np.sum(p * np.log2(p + (p == 0)))

    @staticmethod
    def sd(f):
        return np.std(f)

    @staticmethod
    def sf(f):
        return np.sqrt(np.mean((f[:, 1:] - f[:, :-1]) ** 2) + np.mean((f[1:, :] - f[:-1, :]) ** 2))

    @staticmethod
    def ag(f):
        gx = np.zeros_like(f)
        gy = np.zeros_like(f)
        gx[:, 0] = f[:, 1] - f[:, 0]
        gx[:, -1] = f[:, -1] - f[:, -2]
        gx[:, 1:-1] = (f[:, 2:] - f[:, :-2]) / 2
        gy[0, :] = f[1, :] - f[0, :]
        gy[-1, :] = f[-1, :] - f[-2, :]
        gy[1:-1, :] = (f[2:, :] - f[:-2, :]) / 2
        return np.mean(np.sqrt((gx ** 2 + gy ** 2) / 2))

    @staticmethod
    def _mi(x, y):
        # label every distinct value, count label pairs, then sum p log(p / (px py)) in nats
        _, lx = np.unique(x.ravel(), return_inverse=True)
        _, ly = np.unique(y.ravel(), return_inverse=True)
        pairs, counts = np.unique(np.stack([lx, ly]), axis=1, return_counts=True)
        n = lx.size
        px = np.bincount(lx) / n
        py = np.bincount(ly) / n
        pxy = counts / n
        return float(np.sum(pxy * np.log(pxy / (px[pairs[0]] * py[pairs[1]]))))

    @classmethod
    def mi(cls, f, a, b):
        try:  # what the script calls: scikit-learn's contingency-table MI
            from sklearn.metrics import mutual_info_score
        except ImportError:  # same counting with numpy
            return cls._mi(f, a) + cls._mi(f, b)
        return mutual_info_score(f.ravel(), a.ravel()) + mutual_info_score(f.ravel(), b.ravel())

    @staticmethod
    def _corr(x, y):
        dx = x - np.mean(x)
        dy = y - np.mean(y)
        return np.sum(dx * dy) / np.sqrt(np.sum(dx ** 2) * np.sum(dy ** 2))

    @classmethod
    def scd(cls, f, a, b):
        return cls._corr(a, f - b) + cls._corr(b, f - a)

    @classmethod
    def cc(cls, f, a, b):
        return (cls._corr(a, f) + cls._corr(b, f)) / 2

    @staticmethod
    def psnr(f, a, b):
        mse = (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2
        return 10 * np.log10(np.max(f) ** 2 / mse)

    @staticmethod
    def _vifp(ref, dist):
        sigma_nsq, eps = 2.0, 1e-10
        num = den = 0.0
        for scale in range(1, 5):
            n = 2 ** (4 - scale + 1) + 1
            half = (n - 1) / 2
            y, x = np.ogrid[-half:half + 1, -half:half + 1]
            win = np.exp(-(x * x + y * y) / (2 * (n / 5.0) ** 2))
            win = win / win.sum()
            if scale > 1:
                ref = convolve2d(ref, win, mode="valid")[::2, ::2]
                dist = convolve2d(dist, win, mode="valid")[::2, ::2]
            mu1 = convolve2d(ref, win, mode="valid")
            mu2 = convolve2d(dist, win, mode="valid")
            s1 = convolve2d(ref * ref, win, mode="valid") - mu1 * mu1
            s2 = convolve2d(dist * dist, win, mode="valid") - mu2 * mu2
            s12 = convolve2d(ref * dist, win, mode="valid") - mu1 * mu2
            s1[s1 < 0] = 0
            s2[s2 < 0] = 0
            g = s12 / (s1 + eps)
            sv = s2 - g * s12
            g[s1 < eps] = 0
            sv[s1 < eps] = s2[s1 < eps]
            s1[s1 < eps] = 0
            g[s2 < eps] = 0
            sv[s2 < eps] = 0
            sv[g < 0] = s2[g < 0]
            g[g < 0] = 0
            sv[sv <= eps] = eps
            num += np.sum(np.log10(1 + g * g * s1 / (sv + sigma_nsq)))
            den += np.sum(np.log10(1 + s1 / sigma_nsq))
        v = num / den
        return 1.0 if np.isnan(v) else v

    @classmethod
    def vif(cls, f, a, b):
        return cls._vifp(a, f) + cls._vifp(b, f)

    @staticmethod
    def _edges(img):
        sx = convolve2d(img, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32), mode="same")
        sy = convolve2d(img, np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32), mode="same")
        g = np.sqrt(sx * sx + sy * sy)
        ang = np.zeros_like(img)
        ang[sx == 0] = math.pi / 2
        ang[sx != 0] = np.arctan(sy[sx != 0] / sx[sx != 0])
        return g, ang

    @staticmethod
    def _q(ga, aa, gf, af):
        rel = np.zeros_like(aa)
        rel[ga > gf] = gf[ga > gf] / ga[ga > gf]
        rel[ga == gf] = gf[ga == gf]
        rel[ga < gf] = ga[ga < gf] / gf[ga < gf]
        orient = 1 - np.abs(aa - af) / (math.pi / 2)
        return 0.9994 / (1 + np.exp(-15 * (rel - 0.5))) * 0.9879 / (1 + np.exp(-22 * (orient - 0.8)))

    @classmethod
    def qabf(cls, f, a, b):
        ga, aa = cls._edges(a)
        gb, ab = cls._edges(b)
        gf, af = cls._edges(f)
        return np.sum(cls._q(ga, aa, gf, af) * ga + cls._q(gb, ab, gf, af) * gb) / np.sum(ga + gb)

    @staticmethod
    def ssim(f, a, b):
        from skimage.metrics import structural_similarity

        return structural_similarity(f, a, data_range=2) + structural_similarity(f, b, data_range=2)

    @classmethod
    def compute(cls, f, a, b):
        out = {}
        for name in NAMES:
            fn = getattr(cls, name)
            out[name] = float(fn(f) if name in ("en", "sd", "sf", "ag") else fn(f, a, b))
        return out


def load_triplets(count):
    from fusekit.io import read_image
    from fusekit.metrics.profiles import CDDFUSE

    folder = DATA / "ivif" / "msrs" / "test"
    names = sorted(p.name for p in (folder / "ir").iterdir())[:count]
    out = []
    for name in names:
        a = CDDFUSE.prepare(read_image(folder / "ir" / name), 1.0).astype(np.float32)
        b = CDDFUSE.prepare(read_image(folder / "vi" / name), 1.0).astype(np.float32)
        out.append((name, np.round((a + b) / 2).astype(np.float32), a, b))
    return out


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def bench_metrics(triplets, rounds):
    """Interleaved rounds (reference, fusekit cddfuse, fusekit standard) per triplet.

    Other processes change the machine's speed from second to second, so the
    three are timed back to back in each round and the ratio is taken per
    round; medians over rounds and triplets are reported.
    """
    from fusekit.metrics import compiled, compute

    def run(numba: bool, profile: str):
        os.environ["FUSEKIT_NUMBA"] = "1" if numba else "0"
        compiled._reset()
        try:
            return compute(f, [a, b], metrics=NAMES if profile == "cddfuse" else None, profile=profile,
                           data_range=255)  # the triplets are 0-255 float32 arrays
        finally:
            os.environ.pop("FUSEKIT_NUMBA")
            compiled._reset()

    rows = []  # (ref wall, ref cpu, ours wall, ours cpu, all wall, all cpu, plain wall, plain cpu)
    worst = 0.0
    for name, f, a, b in triplets:
        for numba in (True, False):  # warm-up (imports, kernels, allocator)
            run(numba, "standard")
            run(numba, "cddfuse")
        for _ in range(rounds):
            rw, rc, ref = _timed(lambda: Reference.compute(f, a, b))
            ow, oc, ours = _timed(lambda: run(True, "cddfuse"))
            aw, ac, _ = _timed(lambda: run(True, "standard"))
            pw, pc, plain = _timed(lambda: run(False, "cddfuse"))
            qw, qc, _ = _timed(lambda: run(False, "standard"))
            rows.append((rw, rc, ow, oc, aw, ac, pw, pc, qw, qc))
            print(f"{name}: reference {rw * 1e3:.0f} ms ({rc * 1e3:.0f} CPU), fusekit cddfuse "
                  f"{ow * 1e3:.1f} ms ({oc * 1e3:.1f} CPU), standard (all metrics) {aw * 1e3:.1f} ms "
                  f"({ac * 1e3:.1f} CPU); without numba: cddfuse {pw * 1e3:.1f} ms ({pc * 1e3:.1f} CPU), "
                  f"standard {qw * 1e3:.1f} ms ({qc * 1e3:.1f} CPU)", flush=True)
        for k in NAMES:
            r = ref[k]
            if math.isnan(r):
                continue
            for o in (float(ours[k]), float(plain[k])):
                rel = abs(r - o) / max(abs(r), 1e-12)
                worst = max(worst, rel)
                if rel > 1e-5:
                    raise SystemExit(f"{name} {k}: reference {r!r} vs fusekit {o!r} (relative {rel:.2e})")
    t = np.array(rows)
    med = np.median(t, axis=0)
    ratios = {
        "ours_wall": float(np.median(t[:, 0] / t[:, 2])), "ours_cpu": float(np.median(t[:, 1] / t[:, 3])),
        "all_wall": float(np.median(t[:, 0] / t[:, 4])), "all_cpu": float(np.median(t[:, 1] / t[:, 5])),
        "plain_wall": float(np.median(t[:, 0] / t[:, 6])), "plain_cpu": float(np.median(t[:, 1] / t[:, 7])),
        "plain_all_wall": float(np.median(t[:, 0] / t[:, 8])), "plain_all_cpu": float(np.median(t[:, 1] / t[:, 9])),
        "numba_gain": float(np.median(t[:, 6] / t[:, 2])), "numba_gain_all": float(np.median(t[:, 8] / t[:, 4])),
    }
    return med, ratios, worst


def bench_breakdown(triplet, rounds):
    """CPU milliseconds of each metric of the cddfuse set on one triplet (fresh context, best of rounds)."""
    from fusekit.metrics.compute import evaluate_metric, make_context, resolve_metrics
    from fusekit.metrics.profiles import CDDFUSE

    _, f, a, b = triplet
    metrics = resolve_metrics(NAMES)
    best = {m.name: float("inf") for m in metrics}
    for _ in range(rounds):
        ctx = make_context(f, [a, b], CDDFUSE, data_range=255)
        for m in metrics:
            c0 = time.process_time()
            evaluate_metric(m, ctx)
            best[m.name] = min(best[m.name], (time.process_time() - c0) * 1e3)
    return best


def _cpu_seconds():
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_jobs(pairs, rounds):
    """Best wall time and the CPU seconds of that run, for jobs=1 and jobs=2."""
    from fusekit.evaluation import evaluate

    dataset = DATA / "ivif" / "roadscene" / "test"
    with tempfile.TemporaryDirectory() as cache:
        evaluate(dataset, methods=["average"], cache_dir=cache, metrics="en")  # fill the cache
        names = sorted(p.stem for p in (Path(cache)).rglob("*.png"))[:pairs]
        if len(names) < pairs:
            raise SystemExit(f"only {len(names)} pairs in {dataset}")
        best = {}
        for jobs in (1, 2) * rounds:
            c0, t0 = _cpu_seconds(), time.perf_counter()
            report = evaluate(dataset, methods=["average"], cache_dir=cache, jobs=jobs)
            dt, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
            if report.failures or len(report.rows) != pairs:
                raise SystemExit(f"evaluation failed: {report.failures[:3]}")
            if dt < best.get(jobs, (float("inf"), 0.0))[0]:
                best[jobs] = (dt, cpu)
            print(f"evaluate {pairs} pairs, jobs={jobs}: {dt:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    return best[1], best[2]


def bench_methods(pairs, methods, rounds):
    """Several methods' outputs scored in one ``evaluate`` call vs one call per method.

    Both read the same cached fused images (jobs=1); one call per method is
    how each method's images were scored before work items were grouped by
    scene, and what a user scoring methods one by one pays. Interleaved
    rounds, ratio per round, median and best times reported.
    """
    from fusekit.evaluation import evaluate

    dataset = DATA / "ivif" / "roadscene" / "test"
    sources = ("ir", "vi")
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "data"
        names = sorted(p.name for p in (dataset / "ir").iterdir())[:pairs]
        for mod in sources:
            (subset / mod).mkdir(parents=True)
            for name in names:
                (subset / mod / name).symlink_to(dataset / mod / name)
        cache = Path(tmp) / "cache"
        evaluate(subset, methods=list(methods), cache_dir=cache, metrics="en")  # produce once
        times = []  # (together, one by one)
        for _ in range(rounds):
            t0 = time.perf_counter()
            together = evaluate(subset, methods=list(methods), cache_dir=cache)
            t1 = time.perf_counter()
            alone = [evaluate(subset, methods=[m], cache_dir=cache) for m in methods]
            t2 = time.perf_counter()
            if together.produced or together.failures or together.rows != [r for a in alone for r in a.rows]:
                raise SystemExit("scoring together and one by one disagree")
            times.append((t1 - t0, t2 - t1))
            print(f"{len(methods)} methods x {pairs} pairs: together {t1 - t0:.2f} s, "
                  f"one call per method {t2 - t1:.2f} s", flush=True)
    t = np.array(times)
    return t.min(axis=0), float(np.median(t[:, 1] / t[:, 0]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triplets", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds per triplet")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2, help="jobs=1 / jobs=2 alternations")
    parser.add_argument("--methods", default="average,max,pca,laplacian-pyramid",
                        help="methods whose outputs are scored together vs one by one")
    parser.add_argument("--method-pairs", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found; the benchmark needs shared/data beside the repository")
    load_before = os.getloadavg()[0]
    triplets = load_triplets(args.triplets)
    med, ratio, worst = bench_metrics(triplets, args.repeat)
    parts = bench_breakdown(triplets[0], 2 * args.repeat + 1)
    order = sorted(parts, key=parts.get, reverse=True)
    breakdown = ", ".join(f"{name.upper() if name != 'qabf' else 'Qabf'} {parts[name]:.1f}" for name in order)
    ref, ref_cpu, ours, ours_cpu, ours_all, all_cpu, plain, plain_cpu, plain_all, plain_all_cpu = med
    (t1, cpu1), (t2, cpu2) = bench_jobs(args.pairs, args.rounds)
    methods = [m for m in args.methods.split(",") if m]
    (together, one_by_one), methods_ratio = bench_methods(args.method_pairs, methods, args.rounds + 1)
    load_after = os.getloadavg()[0]
    from fusekit.metrics import compiled

    kernels = ("with numba's compiled kernels (`FUSEKIT_NUMBA=1`)" if compiled.available()
               else "WITHOUT numba (not installed)")
    from fusekit.metrics import resolve_metrics

    n_standard = len(resolve_metrics(None, profile="standard"))
    verdict = (f"The issue's 20x target is {'met' if min(ratio['ours_wall'], ratio['ours_cpu']) >= 20 else 'not met'} "
               f"in this run {kernels}; with numpy/scipy alone fusekit is {ratio['plain_wall']:.1f}x faster.")
    text = f"""## Metrics (`benchmarks/metrics.py`)

Command: `python benchmarks/metrics.py` ({args.triplets} MSRS 640x480 triplets x {args.repeat}
interleaved rounds of reference / fusekit, medians; {args.pairs} RoadScene pairs, best of
{args.rounds} alternating runs per setting). Machine: {platform.machine()}, {os.cpu_count()} cores,
Python {platform.python_version()}, numpy {np.__version__}; load average {load_before:.1f} before /
{load_after:.1f} after: other processes share the cores, which inflates every wall time.

| what | wall time | CPU time | ratio (wall / CPU) |
|---|---|---|---|
| CDDFuse-style reference, 11 metrics, per 640x480 triplet | {ref * 1e3:.0f} ms | {ref_cpu * 1e3:.0f} ms | 1 |
| fusekit `cddfuse` profile, same 11 metrics, same values (max relative difference {worst:.1e}), {kernels} (`pip install "fusekit[fast]"`) | {ours * 1e3:.1f} ms | {ours_cpu * 1e3:.1f} ms | **{ratio["ours_wall"]:.1f}x / {ratio["ours_cpu"]:.1f}x faster** |
| same, numpy/scipy only (the default; `FUSEKIT_NUMBA=0`, or numba not installed) | {plain * 1e3:.1f} ms | {plain_cpu * 1e3:.1f} ms | {ratio["plain_wall"]:.1f}x / {ratio["plain_cpu"]:.1f}x faster |
| fusekit `standard` profile, all {n_standard} metrics it computes by default, {kernels} | {ours_all * 1e3:.1f} ms | {all_cpu * 1e3:.1f} ms | {ratio["all_wall"]:.1f}x / {ratio["all_cpu"]:.1f}x faster |
| same, numpy/scipy only | {plain_all * 1e3:.1f} ms | {plain_all_cpu * 1e3:.1f} ms | {ratio["plain_all_wall"]:.1f}x / {ratio["plain_all_cpu"]:.1f}x faster |
| `fusekit.evaluate`, {args.pairs} RoadScene pairs, all metrics, `jobs=1` | {t1:.2f} s | {cpu1:.2f} s | 1 |
| same, `jobs=2` (`fusekit eval --jobs 2`) | {t2:.2f} s | {cpu2:.2f} s | **{t1 / t2:.2f}x faster** (wall) |
| `fusekit.evaluate`, {len(methods)} methods' outputs of {args.method_pairs} RoadScene pairs, all metrics, one call per method | {one_by_one:.2f} s | | 1 |
| same images, one call for all {len(methods)} methods (`fusekit eval --method a --method b ...`) | {together:.2f} s | | **{methods_ratio:.2f}x faster** (median of per-round ratios) |

The CPU seconds show the parallel overhead: `jobs=2` needs {cpu2 / cpu1:.2f}x the CPU time of
`jobs=1`, so on two otherwise idle cores the wall-time speed-up is bounded by about
{2 * cpu1 / cpu2:.2f}x; the measured one is lower while the cores are busy with other work.

numba's kernels make the `cddfuse` set {ratio["numba_gain"]:.2f}x and the `standard` set
{ratio["numba_gain_all"]:.2f}x faster than numpy/scipy alone (medians of per-round ratios, same values).

Methods ({", ".join(methods)}) scored in one call share their scene's work: the sources
are read once and their statistics (source-only VIF and SSIM maps, gradients, grey levels)
are computed once for all methods, so each further method costs only the maps that involve
its fused image; the values are identical (the benchmark checks the rows).

The reference is a plain re-implementation of the script's approach kept in the
benchmark file (boolean-mask assignments, full 2-D `convolve2d` windows,
scikit-learn's per-value label counting for MI, scikit-image SSIM). fusekit uses separable
1-D filtering, one stack of local statistics per VIF scale shared by both
sources, `np.bincount` joint histograms, and computes the fused image's
gradients and statistics once for all metrics.

Where fusekit's time goes (CPU ms per metric on one MSRS triplet, `cddfuse`, best of
{2 * args.repeat + 1}; the metrics share one context, so a metric's cached work is counted where it is
first computed): {breakdown}; {sum(parts.values()):.0f} ms in all. With numba
(`fusekit.metrics.compiled`), SSIM's uniform filters are exact window sums (integer images keep
every sum exact, so its float32 values are scikit-image's bit for bit), VIF's 17-tap Gaussian
passes are direct loops over 8 float64 maps (float32 would break agreement: VIF's 1e-10 variance
thresholds sit far below float32 rounding of E[x^2] - mu^2) and its per-pixel terms one pass, and
Qabf's float32 steps run without temporary maps; what remains of Qabf is mostly three float32
`arctan` maps (the C library's `atanf`, as in numpy, about 4 ms each). Without numba the same
steps are numpy array operations (banded-matrix products for the Gaussians; SSIM's window sums
exact too, `fusekit.metrics.exact_filters`, so no `scipy.ndimage` import). {verdict} The `--jobs` ratio depends mostly on how busy the two cores
are with other work.
"""
    print(text)
    if not args.no_write:
        write_section("metrics", f"<!-- begin metrics -->\n{text.strip()}\n<!-- end metrics -->", REPO / "BENCHMARKS.md")
        print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
