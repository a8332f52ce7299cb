"""Synthetic daily OHLCV for demos and tests, the same bytes on every machine.

The generator is seeded from the snapshot id (numpy's PCG64, whose stream numpy keeps stable) and uses only
uniform draws and + - * / max floor, which IEEE 754 rounds exactly the same everywhere (no exp or log,
whose last bit may differ between CPUs and libraries). Numbers are written with fixed formatting.
"""
import numpy as np

from contracts import sha256_hex

DEMO_SYMBOLS = ("ACME", "BOLT", "CRUX", "DYNA", "EPIC", "FLUX")
DEMO_START = "2014-01-01"
DEMO_END = "2024-01-01"  # exclusive: ten calendar years of business days
_SQRT3 = 1.7320508075688772


def business_days(start: str, end: str) -> np.ndarray:
    """Monday to Friday dates in [start, end), no holidays."""
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D"))
    return days[np.is_busday(days)]


def _rng(snapshot_id: str) -> np.random.Generator:
    seed = int(sha256_hex(f"eam-demo:{snapshot_id}")[:32], 16)
    return np.random.Generator(np.random.PCG64(seed))


def _normal(rng: np.random.Generator, shape) -> np.ndarray:
    # Irwin-Hall: the sum of four uniforms, centred and scaled to unit variance. Bounded (|z| < 3.47), exact.
    u = rng.random((4,) + tuple(shape))
    return (u[0] + u[1] + u[2] + u[3] - 2.0) * _SQRT3


def demo_csv(snapshot_id: str, *, symbols=DEMO_SYMBOLS, start=DEMO_START, end=DEMO_END) -> bytes:
    """A long OHLCV CSV of a random walk per symbol with a common market factor."""
    dates = business_days(start, end)
    T, N = len(dates), len(symbols)
    rng = _rng(snapshot_id)
    start_price = 20.0 + 180.0 * rng.random(N)
    drift = (-0.02 + 0.16 * rng.random(N)) / 252.0
    vol = 0.008 + 0.014 * rng.random(N)
    beta = 0.3 + 0.5 * rng.random(N)
    market = _normal(rng, (T, 1))
    own = _normal(rng, (T, N))
    returns = drift + vol * (beta * market + (1.0 - beta) * own)
    close = start_price * np.cumprod(1.0 + returns, axis=0)
    previous = np.vstack([start_price[None, :], close[:-1]])
    open_ = previous * (1.0 + 0.002 * _normal(rng, (T, N)))
    high = np.maximum(open_, close) * (1.0 + 0.006 * rng.random((T, N)))
    low = np.minimum(open_, close) * (1.0 - 0.006 * rng.random((T, N)))
    volume = np.floor(100_000.0 + 900_000.0 * rng.random((T, N)))

    day = np.repeat(np.datetime_as_string(dates, unit="D"), N).tolist()
    sym = list(symbols) * T
    prices = [["%.4f" % v for v in a.ravel().tolist()] for a in (open_, high, low, close)]
    vols = ["%d" % v for v in volume.ravel().tolist()]
    lines = ["date,symbol,open,high,low,close,volume"]
    lines += [",".join(fields) for fields in zip(day, sym, *prices, vols)]
    return ("\n".join(lines) + "\n").encode()
